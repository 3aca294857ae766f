package webhooks_test

import (
	"context"
	"fmt"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/webhooks"
)

// replicas are n manager replicas serving the Checkpoint webhook, each with its own state,
// reading the apiserver and sharing a pin ledger in namespace ns, as replicas of one
// Deployment do.
func replicas(n int, ns string) []*webhooks.CheckpointWebhook {
	var rs []*webhooks.CheckpointWebhook
	for range n {
		rs = append(rs, &webhooks.CheckpointWebhook{
			Quotas: &webhooks.QuotaReader{Cache: env.Client, Live: env.Client, Policies: policy.NewParsed()},
			Ledger: &webhooks.PinLedger{Client: env.Client, Key: types.NamespacedName{Namespace: ns, Name: webhooks.PinLedgerName}},
		})
	}
	return rs
}

// pinUpdate is the update that pins (or unpins) Checkpoint name: its object now, and as pinned.
func pinUpdate(ns, name string, pinned bool) (old, pin *cqv1.Checkpoint) {
	GinkgoHelper()
	old = &cqv1.Checkpoint{}
	Expect(env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, old)).To(Succeed())
	pin = old.DeepCopy()
	pin.Spec.Pinned = pinned
	if !pinned {
		old.Spec.Pinned = true
	}
	return old, pin
}

var _ = Describe("pins admitted by several replicas", func() {
	var ns string
	BeforeEach(func() {
		ns = labelledNamespace()
		_, stderr, err := apply(clusterQuotaYAML("pins-"+ns, fmt.Sprintf("namespaceSelector: {matchLabels: {spec: %s}}\nlimits:\n  perNamespace: {checkpoints: 2}", ns)))
		Expect(err).NotTo(HaveOccurred(), stderr)
		DeferCleanup(func() { _, _, _ = env.Kubectl("", "delete", "clustercheckpointquota", "pins-"+ns) })
	})

	It("admits one of two pins sent at once to two replicas when one place is left", func() {
		names := createCheckpoints(ns, 3, 1024)
		mustPin(ns, names[0], true)
		rs := replicas(2, ns)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, r := range rs {
			old, pin := pinUpdate(ns, names[1+i], true)
			wg.Go(func() { _, errs[i] = r.ValidateUpdate(context.Background(), old, pin) })
		}
		wg.Wait()
		admitted := 0
		for _, err := range errs {
			if err == nil {
				admitted++
				continue
			}
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
			Expect(err.Error()).To(ContainSubstring("perNamespace.checkpoints 3/2 pinned in " + ns))
		}
		Expect(admitted).To(Equal(1), "pins admitted of two, with one place left: %v", errs)
	})

	It("frees the place of an unpinned archive on every replica at once", func() {
		names := createCheckpoints(ns, 3, 1024)
		mustPin(ns, names[0], true)
		rs := replicas(2, ns)
		old, pin := pinUpdate(ns, names[1], true)
		_, err := rs[0].ValidateUpdate(context.Background(), old, pin)
		Expect(err).NotTo(HaveOccurred())
		old, pin = pinUpdate(ns, names[2], true)
		_, err = rs[1].ValidateUpdate(context.Background(), old, pin)
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "the other replica's pin counts: %v", err)

		old, unpin := pinUpdate(ns, names[1], false)
		_, err = rs[1].ValidateUpdate(context.Background(), old, unpin)
		Expect(err).NotTo(HaveOccurred())
		old, pin = pinUpdate(ns, names[2], true)
		_, err = rs[0].ValidateUpdate(context.Background(), old, pin)
		Expect(err).NotTo(HaveOccurred())
	})

	It("records nothing for a dry run", func() {
		names := createCheckpoints(ns, 3, 1024)
		mustPin(ns, names[0], true)
		rs := replicas(2, ns)
		dryRun := admission.NewContextWithRequest(context.Background(),
			admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{DryRun: ptr.To(true)}})
		old, pin := pinUpdate(ns, names[1], true)
		_, err := rs[0].ValidateUpdate(dryRun, old, pin)
		Expect(err).NotTo(HaveOccurred())
		old, pin = pinUpdate(ns, names[2], true)
		_, err = rs[1].ValidateUpdate(context.Background(), old, pin)
		Expect(err).NotTo(HaveOccurred(), "a dry run took the last place")
	})
})
