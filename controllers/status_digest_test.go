package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// withoutTransitions is st without its conditions' transition times: conditions that
// someone else removed come back with new ones.
func withoutTransitions(st cqv1.QuotaStatus) cqv1.QuotaStatus {
	st = *st.DeepCopy()
	for i := range st.Conditions {
		st.Conditions[i].LastTransitionTime = metav1.Time{}
	}
	return st
}

// The manager's cache keeps a digest of each quota's status, not the status itself
// (controllers/status_digest.go): these check that the status is still right when the
// stored one is not the one the manager wrote last.
var _ = Describe("Quota status, against the status the apiserver holds", Serial, func() {
	settled := func(ns string) cqv1.QuotaStatus {
		GinkgoHelper()
		Eventually(quotaStatus(ns, "q")).Should(And(
			HaveField("Summary.Checkpoints", "2/3"),
			HaveField("Hard", HaveKeyWithValue("perContainer.checkpoints", resource.MustParse("3")))))
		return quotaStatus(ns, "q")()
	}
	// edit writes a status the manager would not write, as another client.
	edit := func(ns string) {
		GinkgoHelper()
		q := &cqv1.CheckpointQuota{}
		Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "q"}, q)).To(Succeed())
		q.Status.Hard = map[string]resource.Quantity{"perContainer.checkpoints": resource.MustParse("1000")}
		q.Status.Summary.Checkpoints, q.Status.Conditions = "0/1000", nil
		Expect(k8s.Status().Update(context.Background(), q)).To(Succeed())
	}
	resourceVersion := func(ns string) func() string {
		return func() string {
			q := &cqv1.CheckpointQuota{}
			Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "q"}, q)).To(Succeed())
			return q.ResourceVersion
		}
	}

	It("writes back a status that someone else changed, at once", func() {
		ns := newNamespace("digest")
		series(ns, "p", "c", 2, mi, fakeClock.Now(), "")
		create(builder.Quota("q", ns).PerContainer(3, "").Obj())
		want := settled(ns)
		edit(ns)
		// Nothing else changes: no archive, no spec. The edit alone brings the status back.
		Eventually(quotaStatus(ns, "q"), "5s").Should(And(
			HaveField("Summary.Checkpoints", "2/3"),
			HaveField("Hard", HaveKeyWithValue("perContainer.checkpoints", resource.MustParse("3"))),
			HaveField("Conditions", HaveLen(len(want.Conditions)))))
	})

	It("writes nothing after a restart that finds its status current, and writes a stale one again", func() {
		ns := newNamespace("digest")
		series(ns, "p", "c", 2, mi, fakeClock.Now(), "")
		create(builder.Quota("q", ns).PerContainer(3, "").Obj())
		want := settled(ns)
		time.Sleep(2 * time.Second) // the status interval: any write in flight is done

		By("restarting on the status it wrote")
		rv := resourceVersion(ns)()
		stopManager()
		stopManager = startManager()
		Consistently(resourceVersion(ns), "3s").Should(Equal(rv))
		Expect(quotaStatus(ns, "q")()).To(Equal(want))

		By("restarting on a status someone else wrote while it was stopped")
		stopManager()
		edit(ns)
		stopManager = startManager()
		Eventually(func() cqv1.QuotaStatus { return withoutTransitions(quotaStatus(ns, "q")()) }).Should(Equal(withoutTransitions(want)))
	})
})

var _ = Describe("Quota status of maximal quotas, against the status the apiserver holds", Serial, func() {
	It("writes nothing after a restart that finds the statuses current", func() {
		ns := newNamespace("digest")
		create(maximalQuota("q", ns, 1))
		create(maximalClusterQuota("digest-"+ns, 2))
		cluster := func() cqv1.QuotaStatus {
			q := &cqv1.ClusterCheckpointQuota{}
			Expect(k8s.Get(context.Background(), client.ObjectKey{Name: "digest-" + ns}, q)).To(Succeed())
			return q.Status
		}
		Eventually(quotaStatus(ns, "q")).Should(HaveField("ObservedGeneration", BeEquivalentTo(1)))
		Eventually(cluster).Should(HaveField("ObservedGeneration", BeEquivalentTo(1)))
		time.Sleep(2 * time.Second) // the status interval: any write in flight is done
		versions := func() []string {
			q, c := &cqv1.CheckpointQuota{}, &cqv1.ClusterCheckpointQuota{}
			Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "q"}, q)).To(Succeed())
			Expect(k8s.Get(context.Background(), client.ObjectKey{Name: "digest-" + ns}, c)).To(Succeed())
			return []string{q.ResourceVersion, c.ResourceVersion}
		}
		before := versions()
		stopManager()
		stopManager = startManager()
		Consistently(versions, "5s").Should(Equal(before))
		Expect(k8s.Delete(context.Background(), &cqv1.ClusterCheckpointQuota{ObjectMeta: metav1.ObjectMeta{Name: "digest-" + ns}})).To(Succeed())
	})
})
