package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Metrics on controller-runtime's registry, served on the manager's metrics endpoint.
var (
	pruneErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "checkpointquota_prune_errors_total",
		Help: "Deletes of Checkpoints by pruning that failed (a conflict, a not-found or a refusal of a pinned one is not a failure); the next pass retries.",
	})
	prunedCheckpoints = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "checkpointquota_pruned_checkpoints_total",
		Help: "Archives pruned, by the rule that pruned them (a limit such as perContainer.checkpoints, maxAge, maxCheckpointSize, orphans).",
	}, []string{"reason"})
	prunedBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "checkpointquota_pruned_bytes_total",
		Help: "Bytes of the archives pruned, by the rule that pruned them.",
	}, []string{"reason"})
	releasedCheckpoints = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "checkpointquota_released_checkpoints_total",
		Help: "Checkpoints released because their node was gone for the grace period.",
	})
	recomputeSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "checkpointquota_recompute_seconds",
		Help:    "Time to compute usage and the archives to prune for every quota.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 12),
	})
	recomputedArchives = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "checkpointquota_recomputed_archives_total",
		Help: "Archives resolved and computed by the pruning passes: a pass computes only the namespaces that changed.",
	})
)

func init() {
	metrics.Registry.MustRegister(quotaMetrics, pruneErrors, prunedCheckpoints, prunedBytes, releasedCheckpoints, recomputeSeconds, recomputedArchives)
}
