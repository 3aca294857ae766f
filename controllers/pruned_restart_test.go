package controllers_test

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/checkpoint-quota/checkpoint-quota/controllers"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// startPruneOnly runs a manager with the pruning controller alone: no quota status
// controller ever writes, as when a manager stops between its deletes and its next
// status write. The views it publishes are drained and dropped.
func startPruneOnly() context.CancelFunc {
	mgr := newManager()
	updates, drained := make(chan event.GenericEvent), make(chan struct{})
	go func() {
		for {
			select {
			case <-updates:
			case <-drained:
				return
			}
		}
	}()
	Expect((&controllers.PruneReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Views: controllers.NewViewStore(),
		Recorder: mgr.GetEventRecorderFor("checkpoint-quota"), Clock: fakeClock, //nolint:staticcheck
		Concurrency: 8, QuotaUpdates: updates, ClusterQuotaUpdates: updates,
	}).SetupWithManager(context.Background(), mgr)).To(Succeed())
	stop := runManager(mgr)
	return func() { stop(); close(drained) }
}

var _ = Describe("The pruned counter", Serial, func() {
	It("survives a manager that stops between its deletes and its status write", func() {
		ns := newNamespace("pruned")
		stopManager()
		names := series(ns, "p", "c", 7, 2*mi, fakeClock.Now(), "")
		create(builder.Quota("q", ns).PerContainer(2, "").Obj())

		By("pruning with a manager that writes no quota status, then stopping it")
		stop := startPruneOnly()
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(Equal(sorted(names[5:])))
		stop()

		By("starting a whole manager, which has nothing left to prune")
		stopManager = startManager()
		Eventually(quotaStatus(ns, "q")).Should(HaveField("Summary.Checkpoints", "2/2"))
		pruned := func() int64 { return quotaStatus(ns, "q")().Pruned.Checkpoints }
		Eventually(pruned).Should(BeEquivalentTo(5))
		Consistently(pruned, "1s").Should(BeEquivalentTo(5))
		st := quotaStatus(ns, "q")()
		Expect(st.Pruned.Storage.Value()).To(BeEquivalentTo(10 * mi))
		Expect(st.Pruned.LastTime).NotTo(BeNil())
	})
})
