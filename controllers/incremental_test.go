package controllers_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

var _ = Describe("Incremental accounting", func() {
	It("computes again only the namespace that changed, and keeps the others' usage", func() {
		quiet, busy := newNamespace("quiet"), newNamespace("busy")
		now := fakeClock.Now()
		kept := series(quiet, "db-0", "pg", 40, mi, now, "")
		create(builder.Quota("q", quiet).Total(50, "").Obj())
		old := series(busy, "web-0", "app", 3, mi, now.Add(-time.Hour), "")
		create(builder.Quota("q", busy).PerContainer(3, "").Obj())
		Eventually(quotaStatus(quiet, "q")).Should(HaveField("Used", HaveKeyWithValue("total.checkpoints", resource.MustParse("40"))))
		Eventually(quotaStatus(busy, "q")).Should(HaveField("Used", HaveKeyWithValue("perContainer.checkpoints", resource.MustParse("3"))))
		// Let the passes that the quotas' creation started end.
		Consistently(func(g Gomega) []string { return remaining(g, busy) }, "1s").Should(Equal(sorted(old)))
		before := recomputedArchives()

		By("pruning the busy namespace's oldest when two more archives arrive there")
		newer := series(busy, "web-0", "app", 2, mi, now, "")
		Eventually(func(g Gomega) []string { return remaining(g, busy) }).Should(Equal(sorted(old[2:], newer)))
		Eventually(quotaStatus(busy, "q")).Should(HaveField("Pruned.Checkpoints", BeEquivalentTo(2)))

		By("leaving the quiet namespace as it was, without computing it again")
		Expect(remaining(Default, quiet)).To(Equal(sorted(kept)))
		Expect(quotaStatus(quiet, "q")()).To(HaveField("Used", HaveKeyWithValue("total.checkpoints", resource.MustParse("40"))))
		// Each pass since computed the busy namespace's 3 to 5 archives, never the quiet one's 40.
		Expect(recomputedArchives() - before).To(SatisfyAll(BeNumerically(">=", 5), BeNumerically("<", 40)))
	})
})

var _ = Describe("Incremental accounting of orphans", func() {
	It("counts an orphan against its deleted namespace, never the namespace created later under its name, in the passes that read only that namespace", func() {
		// home stands for a namespace created again under the name of the deleted one the
		// orphans were taken in: its quota and its archives are another namespace's.
		home, agent := newNamespace("home"), newNamespace("agent")
		pod := "web-" + home
		now := fakeClock.Now()
		create(builder.Quota("q", home).Total(1, "").Obj())
		live := publish(ckpt{ns: home, pod: pod, container: "app", size: mi, at: now.Add(-time.Hour)})
		createCluster(builder.ClusterQuota("orphans-"+home).PodNames(pod).PerNamespace(2, "").Obj())
		var first []string
		for i := range 3 {
			c := publish(ckpt{ns: agent, orphanOf: home, uid: "uid-gone-" + pod, pod: pod, container: "app", size: mi,
				at: now.Add(-time.Duration(3-i) * time.Minute)})
			first = append(first, c.Name)
		}
		Eventually(func(g Gomega) []string { return remaining(g, agent) }).Should(Equal(sorted(first[1:])))
		Consistently(func(g Gomega) []string { return remaining(g, agent) }, "1s").Should(Equal(sorted(first[1:])))
		Expect(remaining(Default, home)).To(Equal([]string{live.Name}))

		By("pruning for an orphan that arrives later, which only the home namespace's pass reads")
		later := publish(ckpt{ns: agent, orphanOf: home, uid: "uid-gone-" + pod, pod: pod, container: "app", size: mi, at: now})
		Eventually(func(g Gomega) []string { return remaining(g, agent) }).Should(Equal(sorted(first[2:], []string{later.Name})))
		Expect(remaining(Default, home)).To(Equal([]string{live.Name}))
		Eventually(clusterStatus("orphans-" + home)).Should(SatisfyAll(
			HaveField("Namespaces", ContainElement(SatisfyAll(
				HaveField("Namespace", home+" (deleted)"), HaveField("Usage.Checkpoints", BeEquivalentTo(2))))),
			HaveField("Pruned.Checkpoints", BeEquivalentTo(2))))
		Expect(quotaStatus(home, "q")()).To(HaveField("Used", HaveKeyWithValue("total.checkpoints", resource.MustParse("1"))))
	})
})

// recomputedArchives is the manager's checkpointquota_recomputed_archives_total.
func recomputedArchives() float64 {
	GinkgoHelper()
	families, err := metrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() == "checkpointquota_recomputed_archives_total" {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	Fail("no checkpointquota_recomputed_archives_total")
	return 0
}
