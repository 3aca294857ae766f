package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Metrics on controller-runtime's registry, served on the manager's metrics endpoint.
var (
	quotaUsed = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "checkpointquota_quota_used",
		Help: "Usage measured against each limit of a quota: archives, or bytes for storage limits; for a per-scope limit, the scope nearest it.",
	}, []string{"kind", "namespace", "name", "limit"})
	quotaHard = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "checkpointquota_quota_hard",
		Help: "Each limit of a quota in force: archives, or bytes for storage limits.",
	}, []string{"kind", "namespace", "name", "limit"})
	quotaConflicts = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "checkpointquota_quota_conflicts",
		Help: "Limits of a quota that another quota of the same specificity also sets for the same archives.",
	}, []string{"kind", "namespace", "name"})
	quotaBlocked = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "checkpointquota_quota_blocked_limits",
		Help: "Limits of a quota that pinned archives keep from holding: pruning cannot bring them back (the OverQuota condition, reason PinnedCheckpoints).",
	}, []string{"kind", "namespace", "name"})
	quotaBlockingPins = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "checkpointquota_quota_blocking_pinned_checkpoints",
		Help: "Pinned archives that keep a limit of a quota from holding (at most the names the status lists per limit).",
	}, []string{"kind", "namespace", "name"})
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
	statusWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "checkpointquota_status_writes_total",
		Help: "Status writes per quota; coalesced to about one per second under load.",
	}, []string{"kind", "namespace", "name"})
)

func init() {
	metrics.Registry.MustRegister(quotaUsed, quotaHard, quotaConflicts, quotaBlocked, quotaBlockingPins, pruneErrors, prunedCheckpoints, prunedBytes,
		releasedCheckpoints, recomputeSeconds, recomputedArchives, statusWrites)
}
