package nodeagent_test

import (
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

var _ = Describe("Broken archives", func() {
	It("reports every broken variant on the node, keeps it on disk, never follows a symlink, and reads it again when it changes", func() {
		ns, err := env.CreateNamespace(ctx, "broken")
		Expect(err).NotTo(HaveOccurred())
		node, dir := newNode()
		nodeObj := &corev1.Node{}
		Expect(env.Client.Get(ctx, client.ObjectKey{Name: node}, nodeObj)).To(Succeed())

		variants := map[testarchive.Broken]string{
			testarchive.Truncated:  "Truncated",
			testarchive.NotTar:     "NotTar",
			testarchive.NoIdentity: "NoIdentity",
			testarchive.HugeSpec:   "MetadataTooLarge",
			testarchive.Symlink:    "NotRegularFile",
			testarchive.Directory:  "NotRegularFile",
		}
		paths := map[testarchive.Broken]string{}
		for i, broken := range []testarchive.Broken{testarchive.Truncated, testarchive.NotTar, testarchive.NoIdentity, testarchive.HugeSpec, testarchive.Symlink, testarchive.Directory} {
			a := testarchive.New(ns, "broken-"+string(broken), "app").At(time.Now().UTC().Truncate(time.Second).Add(time.Duration(i) * time.Second))
			paths[broken] = a.Damaged(broken).MustWrite(dir)
		}
		target, err := os.Readlink(paths[testarchive.Symlink])
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(os.RemoveAll, filepath.Dir(target))
		good := testarchive.New(ns, "cache-0", "redis")
		good.MustWrite(dir)
		startAgent(node, settleTime, dir)

		want := map[string]float64{}
		for _, reason := range variants {
			want[reason]++
		}
		Eventually(func(g Gomega) map[string]float64 {
			got := map[string]float64{}
			for reason := range want {
				got[reason] = metric(g, node, "checkpointquota_node_unreadable_archives", map[string]string{"reason": reason})
			}
			return got
		}).Should(Equal(want))
		// The truncated archive lost its tail, not its metadata: its namespace is known, so it
		// is published, with the Unreadable condition and an event; the others have no namespace.
		truncatedName := filepath.Base(paths[testarchive.Truncated])
		Eventually(func(g Gomega) []string { return fileNames(checkpointsOf(node)(g)) }).Should(ConsistOf(good.FileName(), truncatedName))
		var truncatedObj cqv1.Checkpoint
		for _, c := range checkpointsOf(node)(Default) {
			if c.Spec.Archive.FileName == truncatedName {
				truncatedObj = c
			}
		}
		cond := meta.FindStatusCondition(truncatedObj.Status.Conditions, cqv1.CheckpointConditionUnreadable)
		Expect(cond).NotTo(BeNil())
		Expect(cond.Status).To(Equal(metav1.ConditionTrue))
		Expect(cond.Reason).To(Equal("Truncated"))
		Expect(cond.Message).To(ContainSubstring("incomplete or damaged"))
		Eventually(eventsAbout(ns, truncatedObj.UID)).Should(ContainElement(withReason("UnreadableArchive")))
		Expect(metric(Default, node, "checkpointquota_node_archives", nil)).To(Equal(1.0))

		// One event series on the Node per kind of failure of the archives without a namespace
		// (the two not-regular entries share one), naming the file and the reason.
		Eventually(nodeEventNotes(node)).Should(And(HaveLen(4),
			ContainElement(ContainSubstring("MetadataTooLarge")),
			// Whichever of the symlink and the directory was read first starts the series.
			ContainElement(Or(ContainSubstring("symlinks are never followed"), ContainSubstring("is a directory, not a regular file"))),
			ContainElement(ContainSubstring(paths[testarchive.NotTar]+": NotTar")),
			ContainElement(ContainSubstring("NoIdentity: spec.dump names no namespace"))))

		for broken, path := range paths {
			Expect(exists(path)).To(BeTrue(), "the %s archive is gone", broken)
		}
		Expect(target).To(BeAnExistingFile(), "the symlink's target outside the directory is gone")

		// A Checkpoint forged for the symlink and deleted never removes it or its target.
		forged := builder.Checkpoint("forged", ns).Of("broken-symlink", "forged-uid", "app").
			On(node, filepath.Dir(paths[testarchive.Symlink]), filepath.Base(paths[testarchive.Symlink])).
			Size(1, "1").At(metav1.Now()).Obj()
		Expect(env.Client.Create(ctx, forged)).To(Succeed())
		// The agent may release it first, as it stands for no readable archive; either way the file stays.
		Expect(client.IgnoreNotFound(env.Client.Delete(ctx, forged))).To(Succeed())
		Eventually(func() error { return env.Client.Get(ctx, client.ObjectKeyFromObject(forged), forged) }).ShouldNot(Succeed())
		Expect(exists(paths[testarchive.Symlink])).To(BeTrue())
		Expect(target).To(BeAnExistingFile())

		// A broken archive replaced whole (rename is atomic) is read again; a new Checkpoint,
		// readable, stands for it, as spec.archive never changes.
		truncated := paths[testarchive.Truncated]
		fixed := testarchive.New(ns, "broken-"+string(testarchive.Truncated), "app").At(time.Now().UTC().Truncate(time.Second))
		tmp := fixed.MustWrite(GinkgoT().TempDir())
		Expect(os.Rename(tmp, truncated)).To(Succeed())
		Eventually(func(g Gomega) {
			var again cqv1.Checkpoint
			for _, c := range checkpointsOf(node)(g) {
				if c.Spec.Archive.FileName == truncatedName {
					again = c
				}
			}
			g.Expect(again.Spec.Archive).NotTo(BeNil(), "no Checkpoint for the replaced archive yet")
			g.Expect(again.UID).NotTo(Equal(truncatedObj.UID))
			g.Expect(again.Spec.Archive.SizeBytes).To(Equal(fixed.Size))
			g.Expect(again.Status.Conditions).To(BeEmpty())
		}).Should(Succeed())
		Eventually(func(g Gomega) float64 {
			return metric(g, node, "checkpointquota_node_unreadable_archives", map[string]string{"reason": "Truncated"})
		}).Should(Equal(-1.0))
	})
})
