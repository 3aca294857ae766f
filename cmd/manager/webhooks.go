package main

import (
	"fmt"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/webhooks"
)

// inClusterNamespaceFile names the namespace of a pod's ServiceAccount, where
// controller-runtime puts the leader-election Lease when no namespace is given.
const inClusterNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// setupWebhooks registers the admission webhooks of both quota kinds with the manager's
// webhook server, which reloads its certificate when the files in --webhook-cert-dir change.
// With leader election, several replicas serve admission: they record the pins they admit
// on a Lease beside the leader's, so that two pins sent to two replicas at once cannot both
// take the last place (webhooks.PinLedger).
func setupWebhooks(mgr ctrl.Manager, policies *policy.Parsed, o options) error {
	wo := webhooks.Options{Policies: policies}
	if o.leaderElect {
		ns := o.leaderElectionNS
		if ns == "" {
			b, err := os.ReadFile(inClusterNamespaceFile)
			if err != nil {
				return fmt.Errorf("the namespace of the pin ledger: set --leader-election-namespace outside a pod: %w", err)
			}
			ns = strings.TrimSpace(string(b))
		}
		wo.PinLedger = &types.NamespacedName{Namespace: ns, Name: webhooks.PinLedgerName}
	}
	return webhooks.SetupWithManager(mgr, wo)
}
