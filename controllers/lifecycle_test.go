package controllers_test

import (
	"context"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

func newPod(ns, name string, labels map[string]string) *corev1.Pod {
	GinkgoHelper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.example/app:1"}}},
	}
	create(p)
	return p
}

var _ = Describe("Orphans, conflicts, nodes and restarts", func() {
	var ns string
	var now time.Time
	BeforeEach(func() {
		ns = newNamespace("life")
		now = fakeClock.Now()
	})

	It("deletes an orphan only after its pod is gone and the grace period has passed", func() {
		pod := newPod(ns, "batch-0", nil)
		c := publish(ckpt{ns: ns, pod: pod.Name, uid: string(pod.UID), container: "c", at: now, size: mi})
		create(builder.Quota("q", ns).Orphans(cqv1.OrphanDelete, "10m").Obj())
		By("keeping it while the pod exists, however long")
		fakeClock.Step(time.Hour)
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "1s").Should(Equal([]string{c.Name}))

		By("keeping it through the grace period after the pod is deleted")
		Expect(k8s.Delete(context.Background(), pod)).To(Succeed())
		Eventually(func() error { return k8s.Get(context.Background(), client.ObjectKeyFromObject(pod), &corev1.Pod{}) }).Should(Satisfy(apierrors.IsNotFound))
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "1s").Should(Equal([]string{c.Name}))
		fakeClock.Step(9 * time.Minute)
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "1s").Should(Equal([]string{c.Name}))

		By("deleting it once the grace period is over")
		fakeClock.Step(2 * time.Minute)
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(BeEmpty())
		Eventually(events(ns, "q", "Pruned")).Should(ContainElement(ContainSubstring("orphans")))
	})

	It("keeps an archive whose pod was replaced by one of the same name only after the grace period", func() {
		pod := newPod(ns, "web-0", nil)
		old := publish(ckpt{ns: ns, pod: "web-0", uid: "uid-of-an-earlier-web-0", container: "c", at: now.Add(-time.Minute), size: mi})
		current := publish(ckpt{ns: ns, pod: "web-0", uid: string(pod.UID), container: "c", at: now, size: mi})
		create(builder.Quota("q", ns).Orphans(cqv1.OrphanDelete, "5m").Obj())
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "1s").Should(Equal(sorted([]string{old.Name, current.Name})))
		fakeClock.Step(6 * time.Minute)
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal([]string{current.Name}))
	})

	It("keeps the archives of a pod deleted, and of one re-created, under the quota that selected it by label", func() {
		pod := newPod(ns, "db-0", map[string]string{"app": "db"})
		var names []string
		for i := range 3 {
			names = append(names, publish(ckpt{ns: ns, pod: pod.Name, uid: string(pod.UID), container: "db",
				at: now.Add(time.Duration(i-3) * time.Minute), size: mi}).Name)
		}
		create(builder.Quota("db", ns).PodSelector(map[string]string{"app": "db"}).PerPod(10, "").Obj())
		create(builder.Quota("default", ns).PerPod(1, "").Obj())
		Eventually(quotaStatus(ns, "db")).Should(HaveField("Summary.Checkpoints", "3/10"))
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "1s").Should(Equal(sorted(names)))

		By("deleting the pod and creating it again, as its StatefulSet does: the manager saw the labels it had")
		Expect(k8s.Delete(context.Background(), pod)).To(Succeed())
		Eventually(func() error { return k8s.Get(context.Background(), client.ObjectKeyFromObject(pod), &corev1.Pod{}) }).Should(Satisfy(apierrors.IsNotFound))
		again := newPod(ns, "db-0", map[string]string{"app": "db"})
		Expect(again.UID).NotTo(Equal(pod.UID))
		names = append(names, publish(ckpt{ns: ns, pod: again.Name, uid: string(again.UID), container: "db", at: now, size: mi}).Name)
		Eventually(quotaStatus(ns, "db")).Should(HaveField("Summary.Checkpoints", "4/10"))
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "1s").Should(Equal(sorted(names)))
		Expect(quotaStatus(ns, "default")().Conditions).NotTo(ContainElement(HaveField("Reason", "HeldCheckpoints")))
	})

	It("holds the archives of a pod whose labels it never saw while a quota that selects pods by label might govern them", func() {
		// The pod went before this manager started: nothing tells its labels.
		var names []string
		for i := range 3 {
			names = append(names, publish(ckpt{ns: ns, pod: "db-1", uid: "uid-of-a-db-1-gone-long-ago", container: "db",
				at: now.Add(time.Duration(i-3) * time.Minute), size: mi}).Name)
		}
		create(builder.Quota("db", ns).PodSelector(map[string]string{"app": "db"}).PerPod(10, "").Obj())
		create(builder.Quota("default", ns).PerPod(1, "").Obj())
		Eventually(func() []metav1.Condition { return quotaStatus(ns, "default")().Conditions }).Should(ContainElement(SatisfyAll(
			HaveField("Type", cqv1.ConditionOverQuota),
			HaveField("Reason", "HeldCheckpoints"),
			HaveField("Message", SatisfyAll(ContainSubstring(names[0]), ContainSubstring("quota that selects pods by label"))))))
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "1s").Should(Equal(sorted(names)))
	})

	It("prunes nothing that a quota which does not parse might keep, until it is fixed", func() {
		sel := map[string]string{"held-by": ns}
		nsObj := &corev1.Namespace{}
		Expect(k8s.Get(context.Background(), client.ObjectKey{Name: ns}, nsObj)).To(Succeed())
		nsObj.Labels = sel
		Expect(k8s.Update(context.Background(), nsObj)).To(Succeed())
		pod := newPod(ns, "web-0", nil)
		var names []string
		for i := range 3 {
			names = append(names, publish(ckpt{ns: ns, pod: pod.Name, uid: string(pod.UID), container: "app",
				at: now.Add(time.Duration(i-3) * time.Minute), size: mi}).Name)
		}
		// Stored past admission (the webhook not serving yet, or an older version's rules).
		team := builder.Quota("team", ns).PerContainer(50, "").MaxAge("7d").Obj()
		create(team)
		cq := builder.ClusterQuota("default-"+ns).NamespaceSelector(sel).PerContainer(1, "").Obj()
		createCluster(cq)
		Eventually(func() []metav1.Condition { return clusterStatus(cq.Name)().Conditions }).Should(ContainElement(SatisfyAll(
			HaveField("Type", cqv1.ConditionOverQuota),
			HaveField("Reason", "HeldCheckpoints"),
			HaveField("Message", ContainSubstring("CheckpointQuota "+ns+"/team, which might govern them, does not parse")))))
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "1s").Should(Equal(sorted(names)))

		By("fixing the quota, which then governs, capped by the cluster quota's limit")
		Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(team), team)).To(Succeed())
		age := cqv1.Duration("168h")
		team.Spec.MaxAge = &age
		Expect(k8s.Update(context.Background(), team)).To(Succeed())
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal(sorted(names[2:])))
		Eventually(quotaStatus(ns, "team")).Should(HaveField("Summary.Checkpoints", "1/1"))
	})

	It("gives an archive without a pod UID the labels of the pod of its name", func() {
		pod := newPod(ns, "db-1", map[string]string{"app": "db"})
		var names []string
		for i := range 3 {
			names = append(names, publish(ckpt{ns: ns, pod: pod.Name, noUID: true, container: "db",
				at: now.Add(time.Duration(i-3) * time.Minute), size: mi}).Name)
		}
		create(builder.Quota("db", ns).PodSelector(map[string]string{"app": "db"}).PerPod(2, "").Obj())
		create(builder.Quota("default", ns).PerPod(1, "").Obj())
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal(sorted(names[1:])))
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "1s").Should(Equal(sorted(names[1:])))
		Eventually(quotaStatus(ns, "db")).Should(HaveField("Summary.Checkpoints", "2/2"))
	})

	It("reports a conflict of two selectors that match one pod, on both quotas, and applies the smaller limit", func() {
		pod := newPod(ns, "cache-0", map[string]string{"app": "redis", "tier": "cache"})
		var names []string
		for i := range 4 {
			names = append(names, publish(ckpt{ns: ns, pod: pod.Name, uid: string(pod.UID), container: "c",
				at: now.Add(time.Duration(i-4) * time.Minute), size: mi}).Name)
		}
		create(builder.Quota("by-app", ns).PodSelector(map[string]string{"app": "redis"}).PerPod(3, "").Obj())
		create(builder.Quota("by-tier", ns).PodSelector(map[string]string{"tier": "cache"}).PerPod(2, "").Obj())
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal(sorted(names[2:])))
		for name, other := range map[string]string{"by-app": "by-tier", "by-tier": "by-app"} {
			Eventually(func() []metav1.Condition { return quotaStatus(ns, name)().Conditions }).Should(ContainElement(SatisfyAll(
				HaveField("Type", cqv1.ConditionConflict),
				HaveField("Status", metav1.ConditionTrue),
				HaveField("Message", SatisfyAll(ContainSubstring("CheckpointQuota "+ns+"/"+other), ContainSubstring(ns+"/cache-0"))),
			)), "quota %s", name)
			Eventually(events(ns, name, "ConflictingQuota")).Should(HaveLen(1))
		}
		Eventually(events(ns, pod.Name, "ConflictingQuota")).ShouldNot(BeEmpty())
	})

	It("releases the Checkpoints of a node gone for the grace period", func() {
		c := publish(ckpt{ns: ns, pod: "p", container: "c", node: "node-gone", at: now, size: mi, finalizer: true})
		Consistently(func(g Gomega) []string { return remaining(g, ns) }, "1s").Should(Equal([]string{c.Name}))
		fakeClock.Step(nodeGrace + time.Minute)
		Eventually(func() error {
			return k8s.Get(context.Background(), client.ObjectKeyFromObject(c), &cqv1.Checkpoint{})
		}).Should(Satisfy(apierrors.IsNotFound))
	})

	It("exports usage, limits and pruned archives as metrics", func() {
		series(ns, "p", "c", 3, mi, now, "")
		create(builder.Quota("q", ns).PerContainer(1, "").Obj())
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(HaveLen(1))
		Eventually(func(g Gomega) []string {
			families, err := scrapeMetrics()
			g.Expect(err).NotTo(HaveOccurred())
			var found []string
			for _, f := range families {
				for _, m := range f.GetMetric() {
					labels := map[string]string{}
					for _, l := range m.GetLabel() {
						labels[l.GetName()] = l.GetValue()
					}
					if labels["namespace"] == ns || (strings.HasPrefix(f.GetName(), "checkpointquota_pruned") && labels["reason"] == "perContainer.checkpoints") {
						found = append(found, f.GetName()+"/"+labels["limit"])
					}
				}
			}
			return found
		}).Should(ContainElements(
			"checkpointquota_quota_used/perContainer.checkpoints",
			"checkpointquota_quota_hard/perContainer.checkpoints",
			"checkpointquota_pruned_checkpoints_total/",
			"checkpointquota_pruned_bytes_total/",
		))
	})
})

var _ = Describe("A restart of the manager", Serial, func() {
	It("converges mid-pruning with no archive deleted that the policy keeps", func() {
		ns := newNamespace("restart")
		now := fakeClock.Now()
		stopManager()
		var keep, prune []string
		for _, ctr := range []string{"a", "b", "c", "d", "e", "f"} {
			for i := range 25 {
				c := publish(ckpt{ns: ns, pod: "p", container: ctr, at: now.Add(time.Duration(i-25) * time.Minute), size: mi, finalizer: true})
				if i >= 22 {
					keep = append(keep, c.Name)
				} else {
					prune = append(prune, c.Name)
				}
			}
		}
		create(builder.Quota("q", ns).PerContainer(3, "").Obj())
		stopManager = startManager()
		terminating := func() []string {
			var list cqv1.CheckpointList
			Expect(k8s.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
			var out []string
			for _, c := range list.Items {
				if !c.DeletionTimestamp.IsZero() {
					out = append(out, c.Name)
				}
			}
			return sorted(out)
		}
		Eventually(terminating, "30s", "10ms").ShouldNot(BeEmpty())
		stopManager()
		By("stopping after " + strconv.Itoa(len(terminating())) + " of " + strconv.Itoa(len(prune)) + " deletes")
		stopManager = startManager()
		Eventually(func(g Gomega) []string { return remaining(g, ns) }, "30s").Should(Equal(sorted(keep)))
		Expect(terminating()).To(Equal(sorted(prune)))
	})
})
