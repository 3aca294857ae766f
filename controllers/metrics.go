package controllers

import (
	"bufio"
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
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
	metrics.Registry.MustRegister(pruneErrors, prunedCheckpoints, prunedBytes, releasedCheckpoints, recomputeSeconds, recomputedArchives)
}

// MetricsHandler serves the manager's metrics in Prometheus' text format: every family that
// registry gathers (controller-runtime's: its own metrics, Go's, the process's and those
// above), then the quotas' series, written as they are read (quotaCollector.writeText)
// rather than gathered: through a registry, each scrape held every quota's series at once
// (issue 29). It answers in the text format whatever the Accept header asks, which every
// Prometheus reads (controller-runtime's handler offers the protocol buffer format too,
// which Prometheus asks for only to read native histograms; the manager has none), and
// compresses with gzip when asked to.
func MetricsHandler(registry prometheus.Gatherer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		families, err := registry.Gather()
		if err != nil {
			// As controller-runtime's handler does (promhttp.HTTPErrorOnError): an
			// incomplete scrape is worse than none.
			http.Error(w, "An error has occurred while gathering metrics:\n\n"+err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
		h.Add("Vary", "Accept-Encoding")
		var out io.Writer = w
		if acceptsGzip(r) {
			h.Set("Content-Encoding", "gzip")
			gz := gzip.NewWriter(w)
			defer func() { _ = gz.Close() }()
			out = gz
		}
		bw := bufio.NewWriterSize(out, 32<<10)
		for _, f := range families {
			if _, err := expfmt.MetricFamilyToText(bw, f); err != nil {
				return // the client went away
			}
		}
		if err := quotaMetrics.writeText(bw); err != nil {
			return
		}
		_ = bw.Flush()
	})
}

// acceptsGzip says whether the request's Accept-Encoding lists gzip with a weight above 0.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			q, weighted := strings.CutPrefix(strings.TrimSpace(params), "q=")
			if !weighted {
				return true
			}
			weight, err := strconv.ParseFloat(q, 64)
			return err == nil && weight > 0
		}
	}
	return false
}
