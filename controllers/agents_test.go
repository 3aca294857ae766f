package controllers_test

import (
	"context"
	"os"
	"sort"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/checkpoint-quota/checkpoint-quota/nodeagent"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// startAgent runs a real node agent for node over dir, in this process, until the spec ends.
func startAgent(node, dir string) {
	GinkgoHelper()
	cfg := *env.Config
	cfg.QPS, cfg.Burst = nodeagent.DefaultQPS, nodeagent.DefaultBurst
	mgr, err := nodeagent.NewManager(context.Background(), &cfg, nodeagent.Config{
		NodeName: node, Dirs: []string{dir}, SettleTime: 200 * time.Millisecond, RescanInterval: 5 * time.Second, NodeStatusInterval: 500 * time.Millisecond,
		StateDir: GinkgoT().TempDir(),
	}, nodeagent.ManagerOptions{MetricsBindAddress: "0"})
	Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		defer GinkgoRecover()
		done <- mgr.Start(ctx)
	}()
	DeferCleanup(func() {
		cancel()
		Eventually(done).Should(Receive(BeNil()))
	})
}

// files lists the archives in a directory, sorted.
func files(dir string) func(Gomega) []string {
	return func(g Gomega) []string {
		entries, err := os.ReadDir(dir)
		g.Expect(err).NotTo(HaveOccurred())
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		sort.Strings(out)
		return out
	}
}

// write writes archives of a container, one minute apart, the newest at end, and returns
// their file names oldest first.
func write(dir, ns, pod, container string, n int, size int64, end time.Time) []string {
	GinkgoHelper()
	var names []string
	for i := range n {
		a := testarchive.New(ns, pod, container).WithRuntime(testarchive.Containerd).WithSize(size).
			At(end.Add(-time.Duration(n-1-i) * time.Minute))
		a.MustWrite(dir)
		names = append(names, a.FileName())
	}
	return names
}

var _ = Describe("With real node agents on two nodes", func() {
	var ns, dirA, dirB string
	var now time.Time
	BeforeEach(func() {
		ns = newNamespace("agents")
		now = time.Now().UTC().Truncate(time.Second)
		dirA, dirB = GinkgoT().TempDir(), GinkgoT().TempDir()
		startAgent("node-a", dirA)
		startAgent("node-b", dirB)
	})

	It("leaves the 2 newest archives of each container on disk", func() {
		app := write(dirA, ns, "web-0", "app", 5, 64<<10, now)
		side := write(dirA, ns, "web-0", "sidecar", 5, 64<<10, now)
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(HaveLen(10))
		create(builder.Quota("q", ns).PerContainer(2, "").Obj())
		Eventually(files(dirA)).Should(Equal(sorted(app[3:], side[3:])))
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(HaveLen(4))
		Consistently(files(dirA), "1s").Should(Equal(sorted(app[3:], side[3:])))
	})

	It("keeps a pod under perPod.storage in Mi, with real archive sizes", func() {
		db := write(dirB, ns, "db-0", "pg", 4, 3<<20, now)
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(HaveLen(4))
		create(builder.Quota("q", ns).PerPod(-1, "7Mi").Obj())
		Eventually(files(dirB)).Should(Equal(sorted(db[2:])))
	})

	It("counts a namespace on both nodes together and prunes the oldest across nodes", func() {
		a := write(dirA, ns, "w-0", "c", 3, 64<<10, now)
		b := write(dirB, ns, "w-1", "c", 3, 64<<10, now.Add(-30*time.Second))
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(HaveLen(6))
		create(builder.Quota("q", ns).Total(3, "").Obj())
		// Oldest first across nodes: b0, a0, b1 go.
		Eventually(files(dirA)).Should(Equal(sorted(a[1:])))
		Eventually(files(dirB)).Should(Equal(sorted(b[2:])))
		Consistently(files(dirA), "1s").Should(Equal(sorted(a[1:])))
	})
})
