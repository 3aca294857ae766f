package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// Moves that the remote limits would prune as soon as they were stored are deleted from
// their nodes instead (docs/offload.md, "Pruned on arrival"). No agent runs here: a move
// is status.offload set, a delete the Checkpoint gone.
var _ = Describe("Pruned on arrival", func() {
	var ns, store string
	var now time.Time
	BeforeEach(func() {
		ns = newNamespace("arrival")
		now = fakeClock.Now()
		store = "arrival-" + ns
		create(&cqv1.CheckpointStore{ObjectMeta: metav1.ObjectMeta{Name: store}, Spec: cqv1.CheckpointStoreSpec{
			Endpoint: "http://s3.example.com", Bucket: "archives", CredentialsSecret: cqv1.SecretName{Name: "s3"},
			NamespaceSelector: &cqv1.LabelSelector{}}})
		DeferCleanup(func() {
			Expect(client.IgnoreNotFound(k8s.Delete(context.Background(), &cqv1.CheckpointStore{ObjectMeta: metav1.ObjectMeta{Name: store}}))).To(Succeed())
		})
	})

	It("deletes from the node, never asking to move them, what remoteLimits of 0 would prune at once; one in flight too", func() {
		onNode := series(ns, "web-0", "app", 3, mi, now, "")
		inFlight := publish(ckpt{ns: ns, pod: "web-0", container: "app", size: mi, at: now.Add(-time.Hour)})
		requestMove(inFlight, store)
		create(builder.Quota("q", ns).PerContainer(1, "").Offload(store).RemotePerContainer(0, "").Obj())

		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal(onNode[2:]))
		Expect(moving(Default, ns)).To(BeEmpty())
		Eventually(events(ns, "q", "Pruned")).Should(ContainElement(MatchRegexp(
			`^Pruned [1-3] checkpoints? \([1-3]Mi\) of ` + ns + `/web-0/app: remoteLimits\.perContainer\.checkpoints [1-3]/0 once stored: ` +
				`deleted from its node instead of moved to CheckpointStore ` + store + `$`)))
		Eventually(quotaStatus(ns, "q")).Should(HaveField("Pruned.Checkpoints", BeEquivalentTo(3)))
		Expect(events(ns, "q", "Offloading")(Default)).To(BeEmpty())
	})

	It("moves an archive newer than the stored ones, which it pushes out once there, and deletes one older than they are", func() {
		stored := seriesOf(ckpt{ns: ns, pod: "web-0", container: "app", size: mi, storedIn: store}, 2, now.Add(-30*time.Minute))
		oldest := publish(ckpt{ns: ns, pod: "web-0", container: "app", size: mi, at: now.Add(-2 * time.Hour)})
		newer := series(ns, "web-0", "app", 2, mi, now, "")
		create(builder.Quota("q", ns).PerContainer(2, "").Offload(store).RemotePerContainer(2, "").Obj())

		By("the oldest, older than both stored archives, would go from the store at once: deleted")
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal(sorted(stored, newer)))
		Consistently(func(g Gomega) []string { return moving(g, ns) }, "1s").Should(BeEmpty())
		Eventually(events(ns, "q", "Pruned")).Should(ContainElement(ContainSubstring("remoteLimits.perContainer.checkpoints 3/2 once stored")))

		By("a newer one is moved, and the stored archives stay until it is there")
		third := publish(ckpt{ns: ns, pod: "web-0", container: "app", size: mi, at: now.Add(time.Minute)})
		Eventually(func(g Gomega) []string { return moving(g, ns) }).Should(Equal([]string{newer[0]}))
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "1s").Should(Equal(sorted(stored, newer, []string{third.Name})))
		Expect(oldest.Name).NotTo(BeElementOf(remaining(Default, ns)))
	})

	It("deletes what is older than remoteLimits.maxAge, and moves the rest", func() {
		old := publish(ckpt{ns: ns, pod: "p", container: "c", size: mi, at: now.Add(-2 * time.Hour)})
		young := publish(ckpt{ns: ns, pod: "p", container: "c", size: mi, at: now.Add(-10 * time.Minute)})
		newest := publish(ckpt{ns: ns, pod: "p", container: "c", size: mi, at: now})
		create(builder.Quota("q", ns).PerContainer(1, "").Offload(store).RemoteMaxAge("1h").Obj())
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal(sorted([]string{young.Name, newest.Name})))
		Eventually(func(g Gomega) []string { return moving(g, ns) }).Should(Equal([]string{young.Name}))
		Eventually(events(ns, "q", "Pruned")).Should(ContainElement(MatchRegexp(`remoteLimits\.maxAge 2h0m0s/1h0m0s once stored`)))
		Expect(old.Name).NotTo(BeEmpty())
	})

	It("counts pinned stored archives, which are never deleted, and so deletes the newcomer", func() {
		pinned := seriesOf(ckpt{ns: ns, pod: "p", container: "c", size: mi, storedIn: store, pinned: true}, 2, now.Add(-time.Hour))
		onNode := series(ns, "p", "c", 2, mi, now, "")
		create(builder.Quota("q", ns).PerContainer(1, "").Offload(store).RemotePerContainer(2, "").Obj())
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal(sorted(pinned, onNode[1:])))
		Expect(moving(Default, ns)).To(BeEmpty())
	})

	It("applies the cluster's remote ceiling to a namespace's moves, and to no other namespace", func() {
		sel := map[string]string{"arrival-spec": ns}
		nsObj := &corev1.Namespace{}
		Expect(k8s.Get(context.Background(), client.ObjectKey{Name: ns}, nsObj)).To(Succeed())
		nsObj.Labels = sel
		Expect(k8s.Update(context.Background(), nsObj)).To(Succeed())
		cq := builder.ClusterQuota("arrival-"+ns).NamespaceSelector(sel).RemotePerNamespace(0, "").Obj()
		create(cq)
		DeferCleanup(func() { Expect(k8s.Delete(context.Background(), cq)).To(Succeed()) })
		other := newNamespace("arrival-other")

		mine := series(ns, "p", "c", 2, mi, now, "")
		theirs := series(other, "p", "c", 2, mi, now, "")
		// The namespace's own remote limit is looser: the ceiling binds.
		create(builder.Quota("q", ns).PerContainer(1, "").Offload(store).RemoteTotal(10, "").Obj())
		create(builder.Quota("q", other).PerContainer(1, "").Offload(store).RemoteTotal(10, "").Obj())

		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal(mine[1:]))
		Eventually(func(g Gomega) []string { return moving(g, other) }).Should(Equal(theirs[:1]))
		Consistently(func(g Gomega) []string { return remaining(g, other) }, "1s").Should(Equal(theirs))
		Eventually(func(g Gomega) []string {
			var list corev1.EventList
			g.Expect(k8s.List(context.Background(), &list)).To(Succeed())
			var out []string
			for _, e := range list.Items {
				if e.InvolvedObject.Kind == "ClusterCheckpointQuota" && e.InvolvedObject.Name == cq.Name && e.Reason == cqv1.ReasonPruned {
					out = append(out, e.Message)
				}
			}
			return out
		}).Should(ContainElement(ContainSubstring("remoteLimits.perNamespace.checkpoints 1/0 once stored")))
	})

	It("moves, when in doubt, an archive whose upload failed: it is neither counted on its way nor deleted", func() {
		failing := publish(ckpt{ns: ns, pod: "p", container: "c", size: mi, at: now.Add(-time.Hour)})
		requestMove(failing, store)
		meta.SetStatusCondition(&failing.Status.Conditions, metav1.Condition{Type: cqv1.CheckpointConditionOffloadFailed,
			Status: metav1.ConditionTrue, Reason: "OffloadFailed", Message: "connection refused"})
		Expect(k8s.Status().Update(context.Background(), failing)).To(Succeed())
		onNode := series(ns, "p", "c", 1, mi, now, "")
		create(builder.Quota("q", ns).PerContainer(1, "").Offload(store).RemotePerContainer(0, "").Obj())
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "2s").Should(Equal(sorted([]string{failing.Name}, onNode)))
	})
})

// requestMove sets status.offload on c, as the manager asks for a move.
func requestMove(c *cqv1.Checkpoint, store string) {
	GinkgoHelper()
	c.Status.Offload = &cqv1.OffloadRequest{Store: store, Reason: "asked by the spec"}
	Expect(k8s.Status().Update(context.Background(), c)).To(Succeed())
}

// moving lists the Checkpoints of a namespace that are asked to move and not stored yet, sorted.
func moving(g Gomega, ns string) []string {
	var list cqv1.CheckpointList
	g.Expect(k8s.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	var out []string
	for _, c := range list.Items {
		if c.DeletionTimestamp.IsZero() && c.Status.Offload != nil && c.Status.Location == nil {
			out = append(out, c.Name)
		}
	}
	return sorted(out)
}
