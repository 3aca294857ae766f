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

var _ = Describe("Remote limits", func() {
	var ns string
	var now time.Time
	BeforeEach(func() {
		ns = newNamespace("remote")
		now = fakeClock.Now()
	})

	// labelled selects ns alone, for a cluster quota that must not reach other specs.
	labelled := func() map[string]string {
		sel := map[string]string{"remote-spec": ns}
		nsObj := &corev1.Namespace{}
		Expect(k8s.Get(context.Background(), client.ObjectKey{Name: ns}, nsObj)).To(Succeed())
		nsObj.Labels = sel
		Expect(k8s.Update(context.Background(), nsObj)).To(Succeed())
		return sel
	}

	It("keeps the stored archives under remoteLimits and those on nodes under limits, apart", func() {
		stored := seriesOf(ckpt{ns: ns, pod: "web-0", container: "app", size: mi, storedIn: "archive"}, 5, now.Add(-10*time.Minute))
		onNode := series(ns, "web-0", "app", 4, mi, now, "")
		other := newNamespace("remote-other")
		theirs := seriesOf(ckpt{ns: other, pod: "web-0", container: "app", size: mi, storedIn: "archive"}, 3, now)
		create(builder.Quota("q", ns).PerContainer(3, "").RemotePerContainer(2, "").Obj())

		// The node limit counts the 4 on the node, the remote limit the 5 stored.
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal(sorted(stored[3:], onNode[1:])))
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "1s").Should(Equal(sorted(stored[3:], onNode[1:])))
		Expect(remaining(Default, other)).To(Equal(sorted(theirs)))

		By("reporting the remote usage beside the node usage")
		Eventually(quotaStatus(ns, "q")).Should(SatisfyAll(
			HaveField("Hard", HaveKeyWithValue("perContainer.checkpoints", resource.MustParse("3"))),
			HaveField("Hard", HaveKeyWithValue("remoteLimits.perContainer.checkpoints", resource.MustParse("2"))),
			HaveField("Used", HaveKeyWithValue("remoteLimits.perContainer.checkpoints", resource.MustParse("2"))),
			HaveField("Summary.Checkpoints", "3/3"),
			HaveField("Summary.Remote", "2/2, 2Mi"),
			HaveField("Pruned.Checkpoints", BeEquivalentTo(4)),
			HaveField("UsageTable", ContainElement(MatchRegexp(`^remoteLimits\.perContainer\.checkpoints +2 +2 +`+ns+`/web-0/app +in force$`))),
		))
		Eventually(events(ns, "q", "Pruned")).Should(ContainElement(MatchRegexp(
			`^Pruned [1-3] checkpoints? \([1-3]Mi\) of ` + ns + `/web-0/app: remoteLimits.perContainer.checkpoints [3-5]/2$`)))
	})

	It("caps a namespace's remoteLimits at the cluster's, and says so", func() {
		sel := labelled()
		stored := seriesOf(ckpt{ns: ns, pod: "db-0", container: "pg", size: mi, storedIn: "archive"}, 5, now)
		create(builder.Quota("mine", ns).RemoteTotal(100, "").Obj())
		cq := builder.ClusterQuota("remote-"+ns).NamespaceSelector(sel).RemotePerNamespace(2, "").Obj()
		create(cq)
		DeferCleanup(func() { Expect(k8s.Delete(context.Background(), cq)).To(Succeed()) })
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal(sorted(stored[3:])))
		Eventually(quotaStatus(ns, "mine")).Should(SatisfyAll(
			HaveField("Hard", HaveKeyWithValue("remoteLimits.total.checkpoints", resource.MustParse("2"))),
			HaveField("EffectivePolicy", ContainElement(SatisfyAll(
				HaveField("Limit", "remoteLimits.total.checkpoints"),
				HaveField("State", cqv1.LimitCapped),
				HaveField("CappedBy", "ClusterCheckpointQuota remote-"+ns),
				HaveField("CappedAt", "2"),
			))),
		))
	})

	It("never deletes pinned stored archives, counts them, and names them in OverQuota", func() {
		pinned := publish(ckpt{ns: ns, pod: "p", container: "c", at: now.Add(-5 * time.Minute), size: mi, pinned: true, storedIn: "archive"})
		rest := seriesOf(ckpt{ns: ns, pod: "p", container: "c", size: mi, storedIn: "archive"}, 2, now)
		create(builder.Quota("q", ns).RemotePerContainer(0, "").Obj())
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal([]string{pinned.Name}))
		Eventually(func() []metav1.Condition { return quotaStatus(ns, "q")().Conditions }).Should(ContainElement(SatisfyAll(
			HaveField("Type", cqv1.ConditionOverQuota),
			HaveField("Status", metav1.ConditionTrue),
			HaveField("Reason", "PinnedCheckpoints"),
			HaveField("Message", ContainSubstring("remoteLimits.perContainer.checkpoints")),
			HaveField("Message", ContainSubstring(pinned.Name)),
		)))
		_ = rest
	})

	It("deletes stored archives as they reach remoteLimits.maxAge, on the controller's clock", func() {
		old := seriesOf(ckpt{ns: ns, pod: "p", container: "c", size: mi, storedIn: "archive"}, 2, now.Add(-50*time.Minute))
		young := seriesOf(ckpt{ns: ns, pod: "p", container: "c", size: mi, storedIn: "archive"}, 2, now)
		onNode := series(ns, "p", "c", 1, mi, now.Add(-2*time.Hour), "")
		create(builder.Quota("q", ns).RemoteMaxAge("1h").Obj())
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "1s").Should(Equal(sorted(old, young, onNode)))
		fakeClock.Step(15 * time.Minute)
		// The archive on its node is older still: remoteLimits.maxAge is not its rule.
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal(sorted(young, onNode)))
		Eventually(events(ns, "q", "Pruned")).Should(ContainElement(ContainSubstring("remoteLimits.maxAge")))
	})

	It("previews under DryRun and deletes nothing", func() {
		stored := seriesOf(ckpt{ns: ns, pod: "p", container: "c", size: mi, storedIn: "archive"}, 3, now)
		create(builder.Quota("q", ns).RemoteTotal(1, "").Enforcement(cqv1.EnforcementDryRun).Obj())
		Eventually(func() *cqv1.PendingPrune { return quotaStatus(ns, "q")().PendingPrune }).Should(
			HaveField("Names", Equal(stored[:2])))
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "1s").Should(Equal(sorted(stored)))
	})
})
