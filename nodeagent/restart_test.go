package nodeagent_test

import (
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
)

var _ = Describe("Restarting the agent", func() {
	It("converges exactly on what changed while it was down", func() {
		ns, err := env.CreateNamespace(ctx, "restart")
		Expect(err).NotTo(HaveOccurred())
		node, dir := newNode()
		taken := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
		archiveOf := func(pod string, minute int) *testarchive.Archive {
			return testarchive.New(ns, pod, "redis").At(taken.Add(time.Duration(minute) * time.Minute))
		}
		before := []*testarchive.Archive{archiveOf("cache-0", 0), archiveOf("cache-1", 1), archiveOf("cache-2", 2), archiveOf("cache-3", 3), archiveOf("cache-4", 4)}
		for _, a := range before {
			a.MustWrite(dir)
		}
		first := startAgent(node, settleTime, dir)
		var beforeNames []string
		for _, a := range before {
			beforeNames = append(beforeNames, a.FileName())
		}
		Eventually(func(g Gomega) []string { return fileNames(checkpointsOf(node)(g)) }).Should(ConsistOf(beforeNames))
		uids := map[string]types.UID{}
		objects := map[string]cqv1.Checkpoint{}
		var recorded []types.UID
		for _, c := range checkpointsOf(node)(Default) {
			uids[c.Spec.Archive.FileName] = c.UID
			objects[c.Spec.Archive.FileName] = c
			recorded = append(recorded, c.UID)
		}
		awaitRecorded(node, recorded...)
		first.stop()

		// While the agent is down: two archives removed on the node, three written, one
		// Checkpoint deleted by a user, and one deletion interrupted after the file was removed.
		removed, userDeleted, interrupted, kept := before[0], before[1], before[2], before[3:]
		Expect(os.Remove(filepath.Join(dir, removed.FileName()))).To(Succeed())
		Expect(os.Remove(filepath.Join(dir, before[4].FileName()))).To(Succeed())
		kept = kept[:1]
		added := []*testarchive.Archive{archiveOf("cache-5", 5), archiveOf("cache-6", 6), archiveOf("cache-7", 7)}
		for _, a := range added {
			a.MustWrite(dir)
		}
		for _, a := range []*testarchive.Archive{userDeleted, interrupted} {
			obj := objects[a.FileName()]
			Expect(env.Client.Delete(ctx, &obj)).To(Succeed())
		}
		Expect(os.Remove(filepath.Join(dir, interrupted.FileName()))).To(Succeed())
		// No finalizer holds them: the objects go at once, and the file of the user's delete
		// waits on the node for the agent, which finds the delete in its record.
		Eventually(func(g Gomega) []cqv1.Checkpoint { return checkpointsOf(node)(g) }).Should(HaveLen(len(before) - 2))
		Expect(filepath.Join(dir, userDeleted.FileName())).To(BeAnExistingFile())

		startAgent(node, settleTime, dir)
		want := []string{}
		for _, a := range append(kept, added...) {
			want = append(want, a.FileName())
		}
		Eventually(func(g Gomega) []string { return fileNames(checkpointsOf(node)(g)) }).Should(ConsistOf(want))
		Consistently(func(g Gomega) []string { return fileNames(checkpointsOf(node)(g)) }, 2*time.Second).Should(ConsistOf(want))
		onDisk, err := os.ReadDir(dir)
		Expect(err).NotTo(HaveOccurred())
		var files []string
		for _, e := range onDisk {
			files = append(files, e.Name())
		}
		Expect(files).To(ConsistOf(want))
		for _, c := range checkpointsOf(node)(Default) {
			Expect(c.DeletionTimestamp.IsZero()).To(BeTrue(), "%s is still being deleted", c.Name)
			if uid, ok := uids[c.Spec.Archive.FileName]; ok {
				Expect(c.UID).To(Equal(uid), "the Checkpoint of an unchanged archive was replaced")
			}
		}
	})
})
