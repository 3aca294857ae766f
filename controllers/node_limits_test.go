package controllers_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// newNode registers a Node of a unique name, so that node rules see only this spec's archives.
func newNode() string {
	GinkgoHelper()
	name := "node-" + rand.String(6)
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	Expect(k8s.Create(context.Background(), n)).To(Succeed())
	DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(context.Background(), n))).To(Succeed()) })
	return name
}

// createCluster creates a cluster quota and deletes it when the spec ends.
func createCluster(q *cqv1.ClusterCheckpointQuota) {
	GinkgoHelper()
	create(q)
	DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(context.Background(), q))).To(Succeed()) })
}

func clusterStatus(name string) func() cqv1.QuotaStatus {
	return func() cqv1.QuotaStatus {
		q := &cqv1.ClusterCheckpointQuota{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Name: name}, q); err != nil {
			return cqv1.QuotaStatus{}
		}
		return q.Status
	}
}

// archiveAt writes one archive and returns its file name.
func archiveAt(dir, ns, pod string, size int64, at time.Time) string {
	GinkgoHelper()
	a := testarchive.New(ns, pod, "c").WithRuntime(testarchive.Containerd).WithSize(size).At(at)
	a.MustWrite(dir)
	return a.FileName()
}

func sizeOf(dir string, names ...string) int64 {
	GinkgoHelper()
	var n int64
	for _, name := range names {
		info, err := os.Stat(filepath.Join(dir, name))
		Expect(err).NotTo(HaveOccurred())
		n += info.Size()
	}
	return n
}

var _ = Describe("Node rules of a cluster quota, with real node agents", func() {
	var nsA, nsB string
	var now time.Time
	BeforeEach(func() {
		nsA, nsB = newNamespace("shop"), newNamespace("team")
		now = time.Now().UTC().Truncate(time.Second)
	})

	It("prunes only the node over perNode.storage, oldest first across namespaces", func() {
		over, under := newNode(), newNode()
		dirOver, dirUnder := GinkgoT().TempDir(), GinkgoT().TempDir()
		var onOver []string // oldest first, alternating namespaces
		for i := range 6 {
			ns := []string{nsA, nsB}[i%2]
			onOver = append(onOver, archiveAt(dirOver, ns, "p", 64<<10, now.Add(-time.Duration(6-i)*time.Minute)))
		}
		onUnder := []string{archiveAt(dirUnder, nsA, "q", 64<<10, now.Add(-time.Hour))}
		startAgent(over, dirOver)
		startAgent(under, dirUnder)
		Eventually(func(g Gomega) int { return len(remaining(g, nsA)) + len(remaining(g, nsB)) }).Should(Equal(7))

		// Room for the two newest of the node over: four go, from both namespaces.
		limit := sizeOf(dirOver, onOver[4:]...)
		prunedBefore := prunedBy("perNode.storage")
		name := "per-node-" + rand.String(4)
		createCluster(builder.ClusterQuota(name).PerNode(-1, bytesString(limit)).Obj())
		Eventually(files(dirOver)).Should(Equal(sorted(onOver[4:])))
		Consistently(files(dirUnder), "1s").Should(Equal(onUnder))
		Expect(files(dirOver)(Default)).To(Equal(sorted(onOver[4:])))
		Eventually(events("default", name, "Pruned")).Should(ContainElement(HavePrefix("Pruned 4 checkpoints (256Ki) of node " + over + ": perNode.storage")))
		// A per-node limit holds on every node: other specs' nodes may be over it too, and count.
		Expect(prunedBy("perNode.storage")-prunedBefore).To(BeNumerically(">=", 4), `checkpointquota_pruned_checkpoints_total{reason="perNode.storage"}`)
	})

	It("shows the nodes nearest their limits in the quota's status and kubectl describe", func() {
		node := newNode()
		dir := GinkgoT().TempDir()
		for i := range 3 {
			archiveAt(dir, nsA, "p", 32<<10, now.Add(-time.Duration(i)*time.Minute))
		}
		startAgent(node, dir)
		Eventually(func(g Gomega) []string { return remaining(g, nsA) }).Should(HaveLen(3))
		name := "nearest-" + rand.String(4)
		createCluster(builder.ClusterQuota(name).PerNode(3, "").Obj())
		Eventually(func() []cqv1.NodeUsage { return clusterStatus(name)().Nodes }).Should(ContainElement(And(
			HaveField("Node", node), HaveField("Usage.Checkpoints", int64(3)), HaveField("FilesystemFree", Not(BeNil())))))
		Expect(clusterStatus(name)().Nodes[0].Node).To(Equal(node), "the full node comes first")
		Expect(clusterStatus(name)().Hard).To(HaveKey("perNode.checkpoints"))
		out, stderr, err := env.Kubectl("", "describe", "clustercheckpointquota", name)
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(out).To(MatchRegexp(`Node:\s+` + node))
		Expect(out).To(ContainSubstring("perNode.checkpoints"))
	})

	It("prunes until a free-space floor on a small tmpfs holds, and reports the deficit when pins keep it from holding", func() {
		dir := mountTmpfs("8m")
		node := newNode()
		// 3 MiB of other files, 4 archives of 1 MiB, about 1 MiB free.
		Expect(os.WriteFile(filepath.Join(dir, "filler"), make([]byte, 3<<20), 0o600)).To(Succeed())
		var names []string
		for i := range 4 {
			ns := []string{nsA, nsB}[i%2]
			names = append(names, archiveAt(dir, ns, "p", 1<<20, now.Add(-time.Duration(4-i)*time.Minute)))
		}
		startAgent(node, dir)
		Eventually(func(g Gomega) int { return len(remaining(g, nsA)) + len(remaining(g, nsB)) }).Should(Equal(4))

		name := "floor-" + rand.String(4)
		prunedBefore := prunedBy("nodeFilesystem.minFree")
		createCluster(builder.ClusterQuota(name).MinFree("2Mi").Obj())
		Eventually(func(g Gomega) int64 { return free(g, dir) }).Should(BeNumerically(">=", 2<<20))
		// Only the oldest went: what is left are the newest, in both namespaces' order. One pass
		// may prune two while the removal of the first already frees enough: wait until every
		// removal it asked for is done before reading what is left.
		var left []string
		Eventually(func(g Gomega) {
			left = archivesIn(dir)(g)
			g.Expect(left).NotTo(ContainElement(names[0]))
			g.Expect(prunedBy("nodeFilesystem.minFree") - prunedBefore).To(Equal(float64(len(names) - len(left))))
		}).Should(Succeed())
		Expect(left).To(ContainElement(names[3]))
		kept := 0
		for i, n := range names {
			if contains(left, n) {
				kept++
				Expect(names[i:]).To(HaveEach(BeElementOf(left)), "an archive newer than a kept one was pruned")
			}
		}
		Expect(kept).To(BeNumerically(">=", 1))
		Expect(prunedBy("nodeFilesystem.minFree")-prunedBefore).To(Equal(float64(len(names)-kept)),
			"checkpointquota_pruned_checkpoints_total{reason=\"nodeFilesystem.minFree\"}")

		By("pinning what is left and raising the floor out of reach")
		var list cqv1.CheckpointList
		for _, ns := range []string{nsA, nsB} {
			Expect(k8s.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
			for i := range list.Items {
				c := list.Items[i].DeepCopy()
				c.Spec.Pinned = true
				Expect(k8s.Update(context.Background(), c)).To(Succeed())
			}
		}
		Eventually(func(g Gomega) int64 {
			var cn cqv1.CheckpointNode
			g.Expect(k8s.Get(context.Background(), client.ObjectKey{Name: node}, &cn)).To(Succeed())
			return cn.Status.Pinned
		}).Should(Equal(int64(kept)))
		q := &cqv1.ClusterCheckpointQuota{}
		Expect(k8s.Get(context.Background(), client.ObjectKey{Name: name}, q)).To(Succeed())
		*q.Spec.NodeFilesystem.MinFree = intstrFrom("7Mi")
		Expect(k8s.Update(context.Background(), q)).To(Succeed())
		Eventually(func() string {
			c := meta.FindStatusCondition(clusterStatus(name)().Conditions, cqv1.ConditionOverQuota)
			if c == nil || c.Status != metav1.ConditionTrue {
				return ""
			}
			return c.Message
		}).Should(And(ContainSubstring("node "+node+": nodeFilesystem.minFree"), ContainSubstring("still missing"),
			ContainSubstring("pinned checkpoints"), ContainSubstring("of files that are not archives")))
		Eventually(events("default", name, "NodePruningBlocked")).Should(ContainElement(ContainSubstring("node " + node)))
		Consistently(archivesIn(dir), "1s").Should(Equal(left))
	})
})

// archivesIn lists the archives in dir, sorted, leaving out .keep markers and other files.
func archivesIn(dir string) func(Gomega) []string {
	return func(g Gomega) []string {
		var out []string
		for _, name := range files(dir)(g) {
			if strings.HasSuffix(name, ".tar") {
				out = append(out, name)
			}
		}
		return out
	}
}

func free(g Gomega, dir string) int64 {
	var fs syscall.Statfs_t
	g.Expect(syscall.Statfs(dir, &fs)).To(Succeed())
	return int64(fs.Bavail) * fs.Bsize
}

// mountTmpfs mounts a tmpfs of size for the spec. Without root the spec is skipped; as
// root (CI and these machines) a mount that fails fails the spec, so that the floor is
// never silently left untested.
func mountTmpfs(size string) string {
	GinkgoHelper()
	if os.Geteuid() != 0 {
		Skip("the free-space floor spec mounts a tmpfs, which needs root; run the tests as root to include it")
	}
	dir := GinkgoT().TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "mount -t tmpfs: %s", out)
	DeferCleanup(func() { Expect(exec.Command("umount", "-l", dir).Run()).To(Succeed()) })
	return dir
}

// prunedBy is the manager's checkpointquota_pruned_checkpoints_total for reason.
func prunedBy(reason string) float64 {
	GinkgoHelper()
	families, err := metrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != "checkpointquota_pruned_checkpoints_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func bytesString(n int64) string { return strconv.FormatInt(n, 10) }

func intstrFrom(s string) intstr.IntOrString { return intstr.FromString(s) }
