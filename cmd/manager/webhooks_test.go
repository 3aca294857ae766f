package main

import (
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/checkpoint-quota/checkpoint-quota/webhooks"
)

// The webhook configurations in config/webhook name these paths; the manager must serve them.
func TestSetupWebhooksServesEveryPath(t *testing.T) {
	mgr, err := ctrl.NewManager(&rest.Config{Host: "https://127.0.0.1:1"}, ctrl.Options{
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := setupWebhooks(mgr, nil, options{}); err != nil {
		t.Fatal(err)
	}
	mux := mgr.GetWebhookServer().WebhookMux()
	for _, path := range []string{
		webhooks.MutateQuotaPath, webhooks.ValidateQuotaPath,
		webhooks.MutateClusterQuotaPath, webhooks.ValidateClusterQuotaPath,
	} {
		_, pattern := mux.Handler(httptest.NewRequest("POST", path, nil))
		if diff := cmp.Diff(path, pattern); diff != "" {
			t.Errorf("handler of %s (-want +got):\n%s", path, diff)
		}
	}
}
