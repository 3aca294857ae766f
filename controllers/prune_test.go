package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

const mi = 1 << 20

var _ = Describe("Pruning", func() {
	var ns string
	var now time.Time
	BeforeEach(func() {
		ns = newNamespace("prune")
		now = fakeClock.Now()
	})

	It("keeps the 2 newest of each container under perContainer.checkpoints 2", func() {
		a := series(ns, "web-0", "app", 5, mi, now, "")
		b := series(ns, "web-0", "sidecar", 5, mi, now, "")
		create(builder.Quota("q", ns).PerContainer(2, "").Obj())
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal(sorted(a[3:], b[3:])))
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "1s").Should(Equal(sorted(a[3:], b[3:])))

		By("reporting usage and what was pruned in the status")
		Eventually(quotaStatus(ns, "q")).Should(SatisfyAll(
			HaveField("Hard", HaveKeyWithValue("perContainer.checkpoints", resource.MustParse("2"))),
			HaveField("Used", HaveKeyWithValue("perContainer.checkpoints", resource.MustParse("2"))),
			HaveField("Summary.Checkpoints", "2/2"),
			HaveField("Pruned.Checkpoints", BeEquivalentTo(6)),
			HaveField("Containers", HaveLen(2)),
		))
		// Usually one event per container ("Pruned 3 checkpoints (3Mi) of ns/web-0/app:
		// perContainer.checkpoints 5/2"), but the cache may show the archives in two steps.
		Eventually(events(ns, "q", "Pruned")).Should(ContainElement(MatchRegexp(
			`^Pruned [1-3] checkpoints? \([1-3]Mi\) of ` + ns + `/web-0/app: perContainer.checkpoints [3-5]/2$`)))
	})

	It("keeps a pod under perPod.storage in Mi", func() {
		a := series(ns, "db-0", "pg", 4, 3*mi, now, "")
		create(builder.Quota("q", ns).PerPod(-1, "7Mi").Obj())
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal(sorted(a[2:])))
		Eventually(quotaStatus(ns, "q")).Should(HaveField("Summary.Storage", "6Mi/7Mi"))
	})

	It("keeps the newest of the namespace under total.checkpoints, across pods", func() {
		a := series(ns, "a-0", "c", 3, mi, now, "")
		b := series(ns, "b-0", "c", 3, mi, now.Add(-30*time.Second), "")
		create(builder.Quota("q", ns).Total(3, "").Obj())
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal(sorted(a[1:], b[2:])))
	})

	It("counts archives on both nodes together and prunes the oldest across nodes", func() {
		a := series(ns, "w-0", "c", 3, mi, now, "node-a")
		b := series(ns, "w-1", "c", 3, mi, now.Add(-30*time.Second), "node-b")
		create(builder.Quota("q", ns).Total(4, "").Obj())
		// Oldest first across nodes: b0, a0 go.
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal(sorted(a[1:], b[1:])))
		Eventually(quotaStatus(ns, "q")).Should(HaveField("Used", HaveKeyWithValue("total.checkpoints", resource.MustParse("4"))))
	})

	It("caps a namespace quota above the cluster default at the default, and reports the ceiling", func() {
		sel := map[string]string{"mix": ns}
		nsObj := &corev1.Namespace{}
		Expect(k8s.Get(context.Background(), client.ObjectKey{Name: ns}, nsObj)).To(Succeed())
		nsObj.Labels = sel
		Expect(k8s.Update(context.Background(), nsObj)).To(Succeed())
		redis := series(ns, "cache-0", "redis", 5, mi, now, "")
		exporter := series(ns, "cache-0", "exporter", 5, mi, now, "")
		// The namespace's own quota first, asking for more than the cluster allows.
		create(builder.Quota("redis", ns).ContainerNames("redis").PerContainer(4, "").Obj())
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal(sorted(redis[1:], exporter)))
		cq := builder.ClusterQuota("default-"+ns).NamespaceSelector(sel).PerContainer(2, "").Obj()
		create(cq)
		DeferCleanup(func() { Expect(k8s.Delete(context.Background(), cq)).To(Succeed()) })
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal(sorted(redis[3:], exporter[3:])))

		By("reporting the namespace quota's limit as capped, and the cluster's as in force")
		Eventually(quotaStatus(ns, "redis")).Should(SatisfyAll(
			HaveField("Hard", HaveKeyWithValue("perContainer.checkpoints", resource.MustParse("2"))),
			HaveField("EffectivePolicy", ContainElement(SatisfyAll(
				HaveField("Limit", "perContainer.checkpoints"),
				HaveField("State", cqv1.LimitCapped),
				HaveField("CappedBy", "ClusterCheckpointQuota default-"+ns),
				HaveField("CappedAt", "2"),
			))),
		))
		Eventually(func(g Gomega) []cqv1.EffectiveLimit {
			q := &cqv1.ClusterCheckpointQuota{}
			g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(cq), q)).To(Succeed())
			return q.Status.EffectivePolicy
		}).Should(ContainElement(SatisfyAll(
			HaveField("Limit", "perContainer.checkpoints"),
			HaveField("State", cqv1.LimitInForce),
		)))
	})

	It("never touches the archives of team-prod with a quota of team", func() {
		prod := ns + "-prod"
		create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: prod}})
		mine := series(ns, "p", "c", 3, mi, now, "")
		theirs := series(prod, "p", "c", 3, mi, now, "")
		create(builder.Quota("q", ns).Total(1, "").Obj())
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal(mine[2:]))
		Consistently(func(g Gomega) []string { return remaining(g, prod) }, "2s").Should(Equal(sorted(theirs)))
	})

	It("prunes archives over maxCheckpointSize", func() {
		small := publish(ckpt{ns: ns, pod: "p", container: "c", at: now, size: mi})
		publish(ckpt{ns: ns, pod: "p", container: "c", at: now.Add(-time.Minute), size: 3 * mi})
		create(builder.Quota("q", ns).MaxCheckpointSize("2Mi").Obj())
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal([]string{small.Name}))
	})

	It("prunes archives as they reach maxAge, on the controller's clock", func() {
		old := series(ns, "p", "c", 2, mi, now.Add(-50*time.Minute), "")
		young := series(ns, "p", "c", 2, mi, now, "")
		create(builder.Quota("q", ns).MaxAge("1h").Obj())
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "1s").Should(Equal(sorted(old, young)))
		fakeClock.Step(15 * time.Minute)
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal(sorted(young)))
	})

	It("never prunes pinned archives and names them in OverQuota", func() {
		pinned := publish(ckpt{ns: ns, pod: "p", container: "c", at: now.Add(-3 * time.Minute), size: mi, pinned: true})
		rest := series(ns, "p", "c", 3, mi, now, "")
		create(builder.Quota("q", ns).PerContainer(0, "").Obj())
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal([]string{pinned.Name}))
		Eventually(func() []metav1.Condition { return quotaStatus(ns, "q")().Conditions }).Should(ContainElement(SatisfyAll(
			HaveField("Type", cqv1.ConditionOverQuota),
			HaveField("Status", metav1.ConditionTrue),
			HaveField("Reason", "PinnedCheckpoints"),
			HaveField("Message", ContainSubstring(pinned.Name)),
		)))
		Eventually(events(ns, "q", "PruningBlocked")).Should(HaveLen(1))
		_ = rest
	})

	It("lists under DryRun exactly what Enforce then deletes", func() {
		a := series(ns, "p", "c", 4, mi, now, "")
		b := series(ns, "q", "c", 2, 2*mi, now, "")
		q := builder.Quota("q", ns).PerContainer(2, "").Total(-1, "5Mi").Enforcement(cqv1.EnforcementDryRun).Obj()
		create(q)
		var pending []string
		Eventually(func() *cqv1.PendingPrune { return quotaStatus(ns, "q")().PendingPrune }).ShouldNot(BeNil())
		pending = quotaStatus(ns, "q")().PendingPrune.Names
		Expect(pending).NotTo(BeEmpty())
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "1s").Should(Equal(sorted(a, b)))
		Expect(quotaStatus(ns, "q")().Conditions).To(ContainElement(SatisfyAll(
			HaveField("Type", cqv1.ConditionOverQuota), HaveField("Reason", "DryRun"))))

		Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(q), q)).To(Succeed())
		q.Spec.Enforcement = cqv1.EnforcementEnforce
		Expect(k8s.Update(context.Background(), q)).To(Succeed())
		var kept []string
		for _, n := range sorted(a, b) {
			if !contains(pending, n) {
				kept = append(kept, n)
			}
		}
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal(kept))
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "1s").Should(Equal(kept))
	})
})

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
