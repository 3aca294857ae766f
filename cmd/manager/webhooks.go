package main

import (
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/webhooks"
)

// setupWebhooks registers the admission webhooks of both quota kinds with the manager's
// webhook server, which reloads its certificate when the files in --webhook-cert-dir change.
func setupWebhooks(mgr ctrl.Manager, policies *policy.Parsed) error {
	return webhooks.SetupWithManager(mgr, policies)
}
