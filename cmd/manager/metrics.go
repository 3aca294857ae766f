package main

import (
	"net/http"
	"time"

	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/checkpoint-quota/checkpoint-quota/controllers"
)

// addMetricsServer serves /metrics on addr ("0": nowhere) on every replica, leader or not,
// with controllers.MetricsHandler: controller-runtime's registry, then the quotas' series
// written as they are read. controller-runtime's own metrics server cannot: its /metrics
// is the registry's handler, which gathers every series before it writes one, and it
// refuses another handler for that path. So the manager turns it off (its BindAddress "0")
// and runs this one, as controller-runtime suggests for a server of one's own: a
// manager.Server, started with the health probes, before the caches sync.
func addMetricsServer(mgr ctrl.Manager, addr string) error {
	if addr == "0" {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", controllers.MetricsHandler(metrics.Registry))
	return mgr.Add(&manager.Server{
		Name: "metrics",
		// As controller-runtime's servers are set (pkg/internal/httpserver).
		Server: &http.Server{
			Addr:              addr,
			Handler:           mux,
			MaxHeaderBytes:    1 << 20,
			IdleTimeout:       90 * time.Second,
			ReadHeaderTimeout: 32 * time.Second,
		},
		ShutdownTimeout: ptr.To(gracefulShutdown),
	})
}
