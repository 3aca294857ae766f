package controllers_test

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/event"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/checkpoint-quota/checkpoint-quota/controllers"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// startPruneOnly runs a manager with the pruning controller alone: no quota status
// controller ever writes, as when a manager stops between its deletes and its next
// status write. The views it publishes are drained and dropped.
func startPruneOnly() context.CancelFunc {
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 testenv.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	updates := make(chan event.GenericEvent)
	go func() {
		for {
			select {
			case <-updates:
			case <-ctx.Done():
				return
			}
		}
	}()
	Expect((&controllers.PruneReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Engine: controllers.NewEngine(),
		Recorder: mgr.GetEventRecorderFor("checkpoint-quota"), Clock: fakeClock, //nolint:staticcheck
		Concurrency: 8, QuotaUpdates: updates, ClusterQuotaUpdates: updates,
	}).SetupWithManager(mgr)).To(Succeed())
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	return func() { cancel(); <-done }
}

var _ = Describe("The pruned counter", Serial, func() {
	It("survives a manager that stops between its deletes and its status write", func() {
		ns := newNamespace("pruned")
		stopManager()
		names := series(ns, "p", "c", 7, 2*mi, fakeClock.Now(), "")
		create(builder.Quota("q", ns).PerContainer(2, "").Obj())

		By("pruning with a manager that writes no quota status, then stopping it")
		stop := startPruneOnly()
		Eventually(func() []string { return remaining(ns) }).Should(Equal(sorted(names[5:])))
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
