package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

	It("frees a copy fetched to another node first while its stored Checkpoint is there, and as any archive once it is gone", func() {
		// The copy is the newest archive of the container: only being a copy puts it first.
		stored := publish(ckpt{ns: ns, pod: "web-0", container: "app", size: mi, storedIn: "archive", at: now.Add(-time.Hour)})
		onNode := series(ns, "web-0", "app", 3, mi, now.Add(-10*time.Minute), "")
		copied := publish(ckpt{ns: ns, pod: "web-0", container: "app", size: mi, node: "node-b", at: now, name: "copy",
			copyOf: &cqv1.ArchiveCopy{Namespace: ns, Name: stored.Name, UID: stored.UID, NodeName: "node-a"}})
		create(builder.Quota("q", ns).PerContainer(3, "").Obj())
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal(sorted([]string{stored.Name}, onNode)))
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "1s").Should(Equal(sorted([]string{stored.Name}, onNode)))
		Expect(copied.Name).To(Equal("copy"))

		By("a copy whose stored Checkpoint is gone holds the archive's last bytes: the oldest goes, not it")
		other := newNamespace("remote-copy")
		olderOnNode := series(other, "web-0", "app", 3, mi, now.Add(-10*time.Minute), "")
		publish(ckpt{ns: other, pod: "web-0", container: "app", size: mi, node: "node-b", at: now, name: "copy",
			copyOf: &cqv1.ArchiveCopy{Namespace: other, Name: "deleted", UID: "uid-of-a-deleted-checkpoint", NodeName: "node-a"}})
		create(builder.Quota("q", other).PerContainer(3, "").Obj())
		Eventually(func(g Gomega) []string { return remaining(g, other) }).Should(Equal(sorted(olderOnNode[1:], []string{"copy"})))
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

	It("deletes a stored orphan as on nodes: after its grace period, under the orphan rule that governs it", func() {
		pod := newPod(ns, "batch-0", nil)
		stored := publish(ckpt{ns: ns, pod: pod.Name, uid: string(pod.UID), container: "c", at: now.Add(-time.Minute), size: mi, storedIn: "archive"})
		onNode := publish(ckpt{ns: ns, pod: pod.Name, uid: string(pod.UID), container: "c", at: now, size: mi})
		other := newPod(ns, "web-0", nil)
		kept := publish(ckpt{ns: ns, pod: other.Name, uid: string(other.UID), container: "c", at: now, size: mi, storedIn: "archive"})
		// No remoteLimits: the orphan rule alone reaches the store.
		create(builder.Quota("q", ns).Orphans(cqv1.OrphanDelete, "10m").Obj())
		all := sorted([]string{stored.Name, onNode.Name, kept.Name})
		fakeClock.Step(time.Hour)
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "1s").Should(Equal(all))

		By("keeping both through the grace period after the pod is deleted")
		Expect(k8s.Delete(context.Background(), pod)).To(Succeed())
		Eventually(func() error { return k8s.Get(context.Background(), client.ObjectKeyFromObject(pod), &corev1.Pod{}) }).Should(Satisfy(apierrors.IsNotFound))
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "1s").Should(Equal(all))
		fakeClock.Step(9 * time.Minute)
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "1s").Should(Equal(all))

		By("deleting the stored one with the one on the node once it is over; the status does not grow a remote row")
		fakeClock.Step(2 * time.Minute)
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal([]string{kept.Name}))
		Eventually(events(ns, "q", "Pruned")).Should(ContainElement(MatchRegexp(`of ` + ns + `/batch-0/c: orphans: pod batch-0 gone for`)))
		Eventually(quotaStatus(ns, "q")).Should(SatisfyAll(
			HaveField("Pruned.Checkpoints", BeEquivalentTo(2)),
			HaveField("Summary.Remote", ""),
			HaveField("EffectivePolicy", HaveEach(HaveField("Limit", Not(HavePrefix("remoteLimits."))))),
		))
	})

	It("keeps a stored orphan that a more specific quota retains, as on nodes", func() {
		sel := labelled()
		pod := newPod(ns, "batch-0", nil)
		stored := publish(ckpt{ns: ns, pod: pod.Name, uid: string(pod.UID), container: "c", at: now, size: mi, storedIn: "archive"})
		cq := builder.ClusterQuota("orphans-"+ns).NamespaceSelector(sel).Orphans(cqv1.OrphanDelete, "1m").RemotePerContainer(5, "").Obj()
		create(cq)
		DeferCleanup(func() { Expect(k8s.Delete(context.Background(), cq)).To(Succeed()) })
		create(builder.Quota("mine", ns).Orphans(cqv1.OrphanRetain, "").Obj())
		Expect(k8s.Delete(context.Background(), pod)).To(Succeed())
		Eventually(func() error { return k8s.Get(context.Background(), client.ObjectKeyFromObject(pod), &corev1.Pod{}) }).Should(Satisfy(apierrors.IsNotFound))
		fakeClock.Step(time.Hour)
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "2s").Should(Equal([]string{stored.Name}))

		By("deleting it once the namespace's own quota no longer retains it")
		Expect(k8s.Delete(context.Background(), builder.Quota("mine", ns).Obj())).To(Succeed())
		fakeClock.Step(time.Minute)
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(BeEmpty())
	})

	It("previews under DryRun and deletes nothing", func() {
		stored := seriesOf(ckpt{ns: ns, pod: "p", container: "c", size: mi, storedIn: "archive"}, 3, now)
		create(builder.Quota("q", ns).RemoteTotal(1, "").Enforcement(cqv1.EnforcementDryRun).Obj())
		Eventually(func() *cqv1.PendingPrune { return quotaStatus(ns, "q")().PendingPrune }).Should(
			HaveField("Names", Equal(stored[:2])))
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "1s").Should(Equal(sorted(stored)))
	})
})
