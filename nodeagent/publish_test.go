package nodeagent_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
	"github.com/checkpoint-quota/checkpoint-quota/nodeagent"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
)

// identity is what a user reads from a Checkpoint to know which archive it is.
type identity struct {
	Namespace, Pod, UID, Container, Node, FileName, Size, Runtime, Image string
	SizeBytes                                                            int64
	Time                                                                 time.Time
	// Finalizers must stay empty: a namespace's deletion never waits on an agent.
	Finalizers int
}

func identityOf(c cqv1.Checkpoint) identity {
	a := c.Spec.Archive
	return identity{
		Namespace: c.Namespace, Pod: a.PodName, UID: string(a.PodUID), Container: a.ContainerName,
		Node: a.NodeName, FileName: a.FileName, Size: a.Size, SizeBytes: a.SizeBytes,
		Runtime: a.Runtime, Image: a.Image, Time: a.CheckpointTime.UTC(),
		Finalizers: len(c.Finalizers),
	}
}

func identityWant(a *testarchive.Archive, node, runtime string) identity {
	return identity{
		Namespace: a.Namespace, Pod: a.Pod, UID: a.PodUID, Container: a.Container, Node: node, FileName: a.FileName(),
		Size: quota.Bytes(a.Size), SizeBytes: a.Size, Runtime: runtime, Image: a.ReportedImage(), Time: a.Time,
	}
}

var byFile = cmpopts.SortSlices(func(a, b identity) bool { return a.FileName < b.FileName })

var _ = Describe("Publishing archives", func() {
	It("publishes archives of every runtime's style with their identity, and kubectl lists them", func() {
		ns, err := env.CreateNamespace(ctx, "publish")
		Expect(err).NotTo(HaveOccurred())
		// The second namespace's name makes the file names ambiguous: only the archive tells.
		nsProd, err := env.CreateNamespace(ctx, "publish-prod")
		Expect(err).NotTo(HaveOccurred())
		node, dir := newNode()
		taken := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
		crio := testarchive.New(ns, "cache-0", "redis").At(taken).WithUID("0b6f1c1e-crio")
		containerd := testarchive.New(nsProd, "web-5d8f", "nginx").WithRuntime(testarchive.Containerd).At(taken.Add(time.Minute)).WithSize(200 << 10)
		containerd20 := testarchive.New(ns, "db-0", "postgres").WithRuntime(testarchive.Containerd20).At(taken.Add(2 * time.Minute))
		for _, a := range []*testarchive.Archive{crio, containerd, containerd20} {
			a.MustWrite(dir)
		}
		startAgent(node, settleTime, dir)

		want := []identity{
			identityWant(crio, node, "cri-o"),
			identityWant(containerd, node, "containerd"),
			identityWant(containerd20, node, "containerd"),
		}
		Eventually(func(g Gomega) {
			var got []identity
			for _, c := range checkpointsOf(node)(g) {
				got = append(got, identityOf(c))
			}
			g.Expect(cmp.Diff(want, got, byFile)).To(BeEmpty(), "Checkpoints (-want +got)")
		}).Should(Succeed())

		out, stderr, err := env.Kubectl("", "get", "checkpoints", "-A")
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(out).To(ContainSubstring("cache-0"))
		Expect(out).To(ContainSubstring("web-5d8f"))
		Expect(out).To(MatchRegexp(`(?m)^%s\s+\S+\s+web-5d8f\s+nginx\s+%s\s+200Ki\s`, nsProd, node))

		// One write each: the agent's create is the only entry in managedFields, and a
		// readable, unpinned archive has no status.
		out, stderr, err = env.Kubectl("", "get", "checkpoints", "-n", ns, "--show-managed-fields", "-o", "json")
		Expect(err).NotTo(HaveOccurred(), stderr)
		var list struct {
			Items []struct {
				Metadata metav1.ObjectMeta `json:"metadata"`
				Status   map[string]any    `json:"status"`
			}
		}
		Expect(json.Unmarshal([]byte(out), &list)).To(Succeed())
		Expect(list.Items).To(HaveLen(2))
		for _, item := range list.Items {
			Expect(item.Status).To(BeEmpty(), item.Metadata.Name)
			Expect(item.Metadata.ManagedFields).To(HaveLen(1), item.Metadata.Name)
			Expect(item.Metadata.ManagedFields[0].Subresource).To(BeEmpty(), item.Metadata.Name)
		}
	})

	It("publishes an archive written slowly once, after it stops growing, with its final size", func() {
		ns, err := env.CreateNamespace(ctx, "slow")
		Expect(err).NotTo(HaveOccurred())
		node, dir := newNode()
		// Longer than the pauses between chunks, even on a busy machine.
		const settle = time.Second
		a := startAgent(node, settle, dir)
		_ = a

		src := testarchive.New(ns, "cache-0", "redis").WithSize(2 << 20)
		full := src.MustWrite(GinkgoT().TempDir())
		data, err := os.ReadFile(full)
		Expect(err).NotTo(HaveOccurred())

		// Watch for any Checkpoint while the archive grows.
		var mu sync.Mutex
		var seenWhileWriting []int64
		stopWatching := make(chan struct{})
		watched := make(chan struct{})
		go func() {
			defer GinkgoRecover()
			defer close(watched)
			for {
				select {
				case <-stopWatching:
					return
				case <-time.After(50 * time.Millisecond):
				}
				for _, c := range checkpointsOf(node)(Default) {
					mu.Lock()
					seenWhileWriting = append(seenWhileWriting, c.Spec.Archive.SizeBytes)
					mu.Unlock()
				}
			}
		}()

		f, err := os.OpenFile(filepath.Join(dir, src.FileName()), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
		Expect(err).NotTo(HaveOccurred())
		const chunks = 30
		step := len(data) / chunks
		for i := 0; i < len(data); i += step {
			_, err := f.Write(data[i:min(i+step, len(data))])
			Expect(err).NotTo(HaveOccurred())
			time.Sleep(100 * time.Millisecond)
		}
		Expect(f.Close()).To(Succeed())
		close(stopWatching)
		<-watched
		mu.Lock()
		Expect(seenWhileWriting).To(BeEmpty(), "a Checkpoint was published while the archive was still being written")
		mu.Unlock()

		Eventually(func(g Gomega) {
			items := checkpointsOf(node)(g)
			g.Expect(items).To(HaveLen(1))
			g.Expect(items[0].Spec.Archive.SizeBytes).To(Equal(int64(len(data))))
			g.Expect(items[0].Spec.Archive.PodName).To(Equal("cache-0"))
		}).Should(Succeed())
		Expect(metric(Default, node, "checkpointquota_node_archive_reads_total", nil)).To(Equal(1.0), "the archive was read more than once")
		Consistently(func(g Gomega) []string { return fileNames(checkpointsOf(node)(g)) }, 2*settle).Should(HaveLen(1))
	})

	It("waits for an archive whose writer paused longer than the settle time, before its end-of-archive marker", func() {
		ns, err := env.CreateNamespace(ctx, "paused")
		Expect(err).NotTo(HaveOccurred())
		node, dir := newNode()
		const settle = 300 * time.Millisecond
		startAgent(node, settle, dir)

		// The runtimes write the archive in place and tar's end-of-archive marker (two zero
		// blocks) last. Everything before the marker is a well-formed tar on its own.
		src := testarchive.New(ns, "cache-0", "redis").WithSize(256 << 10)
		data, err := os.ReadFile(src.MustWrite(GinkgoT().TempDir()))
		Expect(err).NotTo(HaveOccurred())
		const marker = 1024
		Expect(data[len(data)-marker:]).To(Equal(make([]byte, marker)), "the test archive ends with the marker")
		path := filepath.Join(dir, src.FileName())
		Expect(os.WriteFile(path, data[:len(data)-marker], 0o600)).To(Succeed())

		Consistently(func(g Gomega) []cqv1.Checkpoint { return checkpointsOf(node)(g) }, 10*settle, 50*time.Millisecond).
			Should(BeEmpty(), "a Checkpoint was published while the archive was still being written")
		Expect(metric(Default, node, "checkpointquota_node_unreadable_archives", map[string]string{"reason": "Truncated"})).To(BeNumerically("<=", 0))

		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		Expect(err).NotTo(HaveOccurred())
		_, err = f.Write(data[len(data)-marker:])
		Expect(err).NotTo(HaveOccurred())
		Expect(f.Close()).To(Succeed())
		Eventually(func(g Gomega) {
			items := checkpointsOf(node)(g)
			g.Expect(items).To(HaveLen(1))
			g.Expect(items[0].Spec.Archive.SizeBytes).To(Equal(int64(len(data))))
		}).Should(Succeed())
	})

	It("replaces the Checkpoint when the file changes and deletes it when the file disappears", func() {
		ns, err := env.CreateNamespace(ctx, "change")
		Expect(err).NotTo(HaveOccurred())
		node, dir := newNode()
		startAgent(node, settleTime, dir)
		a := testarchive.New(ns, "cache-0", "redis")
		path := a.MustWrite(dir)
		Eventually(func(g Gomega) []cqv1.Checkpoint { return checkpointsOf(node)(g) }).Should(HaveLen(1))
		uid := checkpointsOf(node)(Default)[0].UID

		// The same name, replaced (rename is atomic) by a bigger archive of another pod UID:
		// spec.archive never changes, so a new Checkpoint stands for the new archive.
		tmp := a.WithSize(128 << 10).WithUID("rewritten-uid").MustWrite(GinkgoT().TempDir())
		Expect(os.Rename(tmp, path)).To(Succeed())
		Eventually(func(g Gomega) {
			items := checkpointsOf(node)(g)
			g.Expect(items).To(HaveLen(1))
			g.Expect(items[0].UID).NotTo(Equal(uid), "the Checkpoint of the old archive still stands")
			g.Expect(items[0].Spec.Archive.SizeBytes).To(Equal(int64(128 << 10)))
			g.Expect(items[0].Spec.Archive.PodUID).To(Equal(types.UID("rewritten-uid")))
		}).Should(Succeed())

		Expect(os.Remove(path)).To(Succeed())
		Eventually(func(g Gomega) []cqv1.Checkpoint { return checkpointsOf(node)(g) }).Should(BeEmpty())
	})

	It("runs two agents of different nodes on one control plane without touching each other", func() {
		ns, err := env.CreateNamespace(ctx, "two")
		Expect(err).NotTo(HaveOccurred())
		nodeA, dirA := newNode()
		nodeB, dirB := newNode()
		startAgent(nodeA, settleTime, dirA)
		startAgent(nodeB, settleTime, dirB)
		// The same archive name on both nodes.
		a := testarchive.New(ns, "cache-0", "redis")
		pathA, pathB := a.MustWrite(dirA), a.MustWrite(dirB)
		onlyB := testarchive.New(ns, "cache-1", "redis").MustWrite(dirB)

		Eventually(func(g Gomega) []string { return fileNames(checkpointsOf(nodeA)(g)) }).Should(ConsistOf(a.FileName()))
		Eventually(func(g Gomega) []string { return fileNames(checkpointsOf(nodeB)(g)) }).Should(ConsistOf(a.FileName(), filepath.Base(onlyB)))
		objA := checkpointsOf(nodeA)(Default)[0]
		before := map[string]types.UID{}
		for _, c := range checkpointsOf(nodeB)(Default) {
			before[c.Name] = c.UID
		}
		Expect(before).NotTo(HaveKey(objA.Name))

		out, stderr, err := env.Kubectl("", "delete", "checkpoint", objA.Name, "-n", ns)
		Expect(err).NotTo(HaveOccurred(), out+stderr)
		Eventually(func() bool { return exists(pathA) }).Should(BeFalse())
		Expect(pathB).To(BeAnExistingFile())
		Expect(onlyB).To(BeAnExistingFile())
		Consistently(func(g Gomega) map[string]types.UID {
			after := map[string]types.UID{}
			for _, c := range checkpointsOf(nodeB)(g) {
				after[c.Name] = c.UID
			}
			return after
		}, time.Second).Should(Equal(before))
		Expect(checkpointsOf(nodeA)(Default)).To(BeEmpty())
	})
})

var _ = Describe("Upgrading from an agent that labelled every Checkpoint with its node", func() {
	It("neither rewrites those Checkpoints nor loses track of them", func() {
		ns, err := env.CreateNamespace(ctx, "relabel")
		Expect(err).NotTo(HaveOccurred())
		node, dir := newNode()
		taken := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
		old := testarchive.New(ns, "cache-0", "redis").At(taken)
		oldPath := old.MustWrite(dir)
		first := startAgent(node, settleTime, dir)
		Eventually(func(g Gomega) []string { return fileNames(checkpointsOf(node)(g)) }).Should(ConsistOf(old.FileName()))
		first.stop()
		// What the earlier agent published: the same object, with the node label.
		obj := checkpointsOf(node)(Default)[0]
		Expect(obj.Labels).To(BeEmpty())
		out, stderr, err := env.Kubectl("", "label", "checkpoint", obj.Name, "-n", ns, cqv1.LegacyLabelNode+"="+node)
		Expect(err).NotTo(HaveOccurred(), out+stderr)
		Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(&obj), &obj)).To(Succeed())
		labelled := obj.ResourceVersion

		startAgent(node, settleTime, dir)
		added := testarchive.New(ns, "cache-1", "redis").At(taken.Add(time.Minute))
		added.MustWrite(dir)
		Eventually(func(g Gomega) []string { return fileNames(checkpointsOf(node)(g)) }).Should(ConsistOf(old.FileName(), added.FileName()))
		Consistently(func(g Gomega) string {
			var now cqv1.Checkpoint
			g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(&obj), &now)).To(Succeed())
			return now.ResourceVersion
		}, 2*time.Second).Should(Equal(labelled), "the agent wrote to a Checkpoint only to drop the old label")

		out, stderr, err = env.Kubectl("", "delete", "checkpoint", obj.Name, "-n", ns)
		Expect(err).NotTo(HaveOccurred(), out+stderr)
		Eventually(func() bool { return exists(oldPath) }).Should(BeFalse(), "a person's delete of a labelled Checkpoint kept its file")
	})
})

var _ = Describe("Upgrading from an agent before spec.archive", func() {
	It("adopts the Checkpoints that agent published, keeping their names, UIDs and pins", func() {
		ns, err := env.CreateNamespace(ctx, "upgrade")
		Expect(err).NotTo(HaveOccurred())
		node, dir := newNode()
		a := testarchive.New(ns, "cache-0", "redis").At(time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC))
		path := a.MustWrite(dir)
		// What the older agent left: the path in an annotation, the pod and container in
		// labels, a Readable condition in status, and a pin a person set.
		legacy := &cqv1.Checkpoint{
			ObjectMeta: metav1.ObjectMeta{
				Name: nodeagent.ObjectName(node, dir, a.FileName()), Namespace: ns,
				Labels: map[string]string{cqv1.LegacyLabelNode: node,
					"checkpointquota.dev/pod": a.Pod, "checkpointquota.dev/container": a.Container},
				Annotations: map[string]string{cqv1.LegacyAnnotationFile: path, "team": "cache"},
			},
			Spec: cqv1.CheckpointSpec{Pinned: true},
		}
		Expect(env.Client.Create(ctx, legacy)).To(Succeed())
		legacy.Status.Conditions = []metav1.Condition{{Type: cqv1.CheckpointConditionUnreadable, Status: metav1.ConditionFalse,
			Reason: "Readable", Message: "the identity was read from config.dump and spec.dump", LastTransitionTime: metav1.Now()}}
		Expect(env.Client.Status().Update(ctx, legacy)).To(Succeed())

		startAgent(node, settleTime, dir)
		Eventually(func(g Gomega) {
			items := checkpointsOf(node)(g)
			g.Expect(items).To(HaveLen(1))
			c := items[0]
			g.Expect(c.UID).To(Equal(legacy.UID), "the Checkpoint was replaced instead of adopted")
			g.Expect(c.Spec.Archive).NotTo(BeNil())
			g.Expect(identityOf(c)).To(Equal(identityWant(a, node, "cri-o")))
			g.Expect(c.Spec.Pinned).To(BeTrue())
			g.Expect(c.Status.Pinned).To(BeTrue())
			g.Expect(c.Status.Conditions).To(BeEmpty())
			g.Expect(c.Labels).To(BeEmpty())
			g.Expect(c.Annotations).To(Equal(map[string]string{"team": "cache"}))
		}).Should(Succeed())

		// Adopted, it is the archive's Checkpoint like any other: spec.archive cannot be
		// edited, and a person's delete, once unpinned, removes the file.
		out, stderr, err := env.Kubectl("", "patch", "checkpoint", legacy.Name, "-n", ns, "--type", "merge", "-p", `{"spec":{"archive":{"podName":"other"}}}`)
		Expect(err).To(HaveOccurred(), out)
		Expect(stderr).To(ContainSubstring("spec.archive is written by the node agent"))
		out, stderr, err = env.Kubectl("", "patch", "checkpoint", legacy.Name, "-n", ns, "--type", "merge", "-p", `{"spec":{"pinned":false}}`)
		Expect(err).NotTo(HaveOccurred(), out+stderr)
		out, stderr, err = env.Kubectl("", "delete", "checkpoint", legacy.Name, "-n", ns)
		Expect(err).NotTo(HaveOccurred(), out+stderr)
		Eventually(func() bool { return exists(path) }).Should(BeFalse())
	})
})
