package nodeagent_test

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
)

// sizeOf is the size of the files at paths together.
func sizeOf(paths ...string) int64 {
	GinkgoHelper()
	var n int64
	for _, p := range paths {
		info, err := os.Lstat(p)
		Expect(err).NotTo(HaveOccurred())
		n += info.Size()
	}
	return n
}

// freeOf is what statfs says is free for unprivileged writers in dir.
func freeOf(dir string) (free, capacity int64) {
	GinkgoHelper()
	var fs unix.Statfs_t
	Expect(unix.Statfs(dir, &fs)).To(Succeed())
	return int64(fs.Bavail) * fs.Bsize, int64(fs.Blocks) * fs.Bsize
}

func checkpointNode(name string) func(Gomega) cqv1.CheckpointNodeStatus {
	return func(g Gomega) cqv1.CheckpointNodeStatus {
		var cn cqv1.CheckpointNode
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: name}, &cn)).To(Succeed())
		return cn.Status
	}
}

var _ = Describe("The CheckpointNode of each node", func() {
	It("shows each agent's archives, bytes, unreadable and pinned ones and the filesystem's free space, in kubectl get", func() {
		ns, err := env.CreateNamespace(ctx, "nodes")
		Expect(err).NotTo(HaveOccurred())
		nodeA, dirA := newNode()
		nodeB, dirB := newNode()
		now := time.Now().UTC().Truncate(time.Second)
		var onA, onB []string
		for i := range 3 {
			onA = append(onA, testarchive.New(ns, "web-0", "app").WithSize(96<<10).At(now.Add(-time.Duration(i)*time.Minute)).MustWrite(dirA))
		}
		onA = append(onA, testarchive.New(ns, "broken", "app").Damaged(testarchive.NotTar).MustWrite(dirA))
		onB = append(onB, testarchive.New(ns, "db-0", "pg").WithSize(200<<10).At(now).MustWrite(dirB))
		startAgent(nodeA, settleTime, dirA)
		startAgent(nodeB, settleTime, dirB)

		By("pinning one archive of node A")
		Eventually(checkpointsOf(nodeA)).Should(HaveLen(3))
		cps := checkpointsOf(nodeA)(Default)
		pin := cps[0].DeepCopy()
		pin.Spec.Pinned = true
		Expect(env.Client.Update(ctx, pin)).To(Succeed())

		Eventually(checkpointNode(nodeA)).Should(And(
			HaveField("Archives", int64(4)),
			HaveField("Bytes", sizeOf(onA...)),
			HaveField("Unreadable", int64(1)),
			HaveField("Pinned", int64(1)),
			HaveField("Unattributed", cqv1.NodeArchives{Archives: 1, Bytes: sizeOf(onA[3])}),
		))
		Eventually(checkpointNode(nodeB)).Should(And(
			HaveField("Archives", int64(1)),
			HaveField("Bytes", sizeOf(onB...)),
			HaveField("Unreadable", int64(0)),
		))
		st := checkpointNode(nodeA)(Default)
		Expect(st.Filesystems).To(HaveLen(1))
		fs := st.Filesystems[0]
		free, capacity := freeOf(dirA)
		Expect(fs.Directories).To(Equal([]string{filepath.Clean(dirA)}))
		Expect(fs.CapacityBytes).To(Equal(capacity))
		// Other processes write to the same filesystem; the agent writes again past a thousandth of it.
		Expect(fs.FreeBytes).To(BeNumerically("~", free, max(capacity/1000, 4096)+(1<<20)))
		Expect(fs.ArchiveBytes).To(Equal(sizeOf(onA...)))

		By("the agent's metrics, per node")
		// checkpointquota_node_archives counts the readable archives; the unreadable one has its own gauge.
		Expect(metric(Default, nodeA, "checkpointquota_node_archives", nil)).To(Equal(3.0))
		Expect(metric(Default, nodeA, "checkpointquota_node_archive_bytes", nil)).To(Equal(float64(sizeOf(onA[:3]...))))
		Expect(metric(Default, nodeB, "checkpointquota_node_archives", nil)).To(Equal(1.0))
		dirs := map[string]string{"directories": filepath.Clean(dirA)}
		Expect(metric(Default, nodeA, "checkpointquota_node_filesystem_capacity_bytes", dirs)).To(Equal(float64(capacity)))
		Expect(metric(Default, nodeA, "checkpointquota_node_filesystem_free_bytes", dirs)).To(BeNumerically("~", float64(free), float64(64<<20)))

		By("kubectl get checkpointnodes, as kubectl top nodes reads")
		out, stderr, err := env.Kubectl("", "get", "checkpointnodes", nodeA, nodeB)
		Expect(err).NotTo(HaveOccurred(), stderr)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		Expect(lines).To(HaveLen(3))
		Expect(strings.Fields(lines[0])).To(Equal([]string{"NAME", "ARCHIVES", "SIZE", "FS-FREE", "FS-FREE%", "AGE"}))
		Expect(strings.Fields(lines[1])[:3]).To(Equal([]string{nodeA, "4", st.Size}))
		Expect(strings.Fields(lines[1])[3]).To(Equal(st.Free))
		Expect(strings.Fields(lines[2])[:2]).To(Equal([]string{nodeB, "1"}))

		By("removing an archive, which the next write shows")
		Expect(os.Remove(onA[1])).To(Succeed())
		Eventually(checkpointNode(nodeA)).Should(And(HaveField("Archives", int64(3)), HaveField("Bytes", sizeOf(onA[0], onA[2], onA[3]))))

		By("deleting the Node, which takes its CheckpointNode along")
		var cn cqv1.CheckpointNode
		Expect(env.Client.Get(ctx, client.ObjectKey{Name: nodeB}, &cn)).To(Succeed())
		Expect(cn.OwnerReferences).To(ContainElement(HaveField("Kind", "Node")))
		Expect(env.Client.Delete(ctx, &corev1.Node{ObjectMeta: cn.ObjectMeta})).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(env.Client.Get(ctx, client.ObjectKey{Name: nodeB}, &cqv1.CheckpointNode{}))
		}).Should(BeTrue())
	})

	It("writes only when something changed", func() {
		ns, err := env.CreateNamespace(ctx, "quiet")
		Expect(err).NotTo(HaveOccurred())
		node, dir := newNode()
		testarchive.New(ns, "web-0", "app").MustWrite(dir)
		startAgent(node, settleTime, dir)
		Eventually(checkpointNode(node)).Should(HaveField("Archives", int64(1)))
		var before cqv1.CheckpointNode
		Expect(env.Client.Get(ctx, client.ObjectKey{Name: node}, &before)).To(Succeed())
		// The test's filesystem is shared with whatever else runs (other test packages, the
		// build cache): a write may only show free space moved by a thousandth or more.
		Consistently(func(g Gomega) {
			var cn cqv1.CheckpointNode
			g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: node}, &cn)).To(Succeed())
			if cn.ResourceVersion == before.ResourceVersion {
				return
			}
			g.Expect(cn.Status.Archives).To(Equal(before.Status.Archives))
			g.Expect(cn.Status.Filesystems).To(HaveLen(1))
			was, is := before.Status.Filesystems[0], cn.Status.Filesystems[0]
			g.Expect(max(is.FreeBytes-was.FreeBytes, was.FreeBytes-is.FreeBytes)).To(BeNumerically(">=", max(is.CapacityBytes/1000, 4096)),
				"a write with the same archives and about the same free space")
			before = cn
		}, 3*time.Second, 500*time.Millisecond).Should(Succeed())
	})
})
