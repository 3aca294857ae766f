package controllers

import (
	"sync"
	"unique"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/resource"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// quotaMetrics holds the per-quota metrics as plain values, by quota, and turns them into
// series when they are scraped. A GaugeVec keeps a metric object and its label pairs for
// every series: about 3.4 KB per quota (a dozen series), 17 MB for 5,000 quotas, and
// deleting a quota's series with DeletePartialMatch read every series of every quota
// (issue 29). The values here cost a tenth of that.
var quotaMetrics = &quotaCollector{byRef: map[policy.Ref]*quotaValues{}}

var (
	quotaLabels   = []string{"kind", "namespace", "name"}
	quotaUsedDesc = prometheus.NewDesc("checkpointquota_quota_used",
		"Usage measured against each limit of a quota: archives, or bytes for storage limits; for a per-scope limit, the scope nearest it.",
		append(quotaLabels, "limit"), nil)
	quotaHardDesc = prometheus.NewDesc("checkpointquota_quota_hard",
		"Each limit of a quota in force: archives, or bytes for storage limits.",
		append(quotaLabels, "limit"), nil)
	quotaConflictsDesc = prometheus.NewDesc("checkpointquota_quota_conflicts",
		"Limits of a quota that another quota of the same specificity also sets for the same archives.", quotaLabels, nil)
	quotaBlockedDesc = prometheus.NewDesc("checkpointquota_quota_blocked_limits",
		"Limits of a quota that pinned archives keep from holding: pruning cannot bring them back (the OverQuota condition, reason PinnedCheckpoints).",
		quotaLabels, nil)
	quotaBlockingPinsDesc = prometheus.NewDesc("checkpointquota_quota_blocking_pinned_checkpoints",
		"Pinned archives that keep a limit of a quota from holding (at most the names the status lists per limit).", quotaLabels, nil)
	statusWritesDesc = prometheus.NewDesc("checkpointquota_status_writes_total",
		"Status writes per quota; coalesced to about one per second under load.", quotaLabels, nil)
)

// quotaCollector is a prometheus.Collector of every quota's metrics.
type quotaCollector struct {
	mu    sync.Mutex
	byRef map[policy.Ref]*quotaValues
}

// quotaValues are one quota's metrics. It has no series until its status is computed,
// except status writes, counted from the first.
type quotaValues struct {
	hard, used               []limitValue
	conflicts, blocked, pins float64
	statusWrites             float64
	computed                 bool
}

// limitValue is one limit's value; the name is shared by every quota.
type limitValue struct {
	name  string
	value float64
}

func limitValues(m map[string]resource.Quantity) []limitValue {
	out := make([]limitValue, 0, len(m))
	for k, q := range m {
		out = append(out, limitValue{name: unique.Make(k).Value(), value: q.AsApproximateFloat64()})
	}
	return out
}

// set replaces a quota's metrics with those of its status and view.
func (c *quotaCollector) set(ref policy.Ref, st *cqv1.QuotaStatus, view *QuotaView) {
	pins := map[string]bool{}
	for _, b := range view.Result.Blocked {
		for _, n := range b.Pinned {
			pins[n] = true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.of(ref)
	v.hard, v.used, v.computed = limitValues(st.Hard), limitValues(st.Used), true
	v.conflicts, v.blocked, v.pins = float64(len(view.Conflicts)), float64(len(view.Result.Blocked)), float64(len(pins))
}

// wrote counts a status write of the quota.
func (c *quotaCollector) wrote(ref policy.Ref) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.of(ref).statusWrites++
}

// forget drops a deleted quota's metrics.
func (c *quotaCollector) forget(ref policy.Ref) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.byRef, ref)
}

func (c *quotaCollector) of(ref policy.Ref) *quotaValues {
	v := c.byRef[ref]
	if v == nil {
		v = &quotaValues{}
		c.byRef[ref] = v
	}
	return v
}

// Describe sends the descriptions of every metric of quotas.
func (c *quotaCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{quotaUsedDesc, quotaHardDesc, quotaConflictsDesc, quotaBlockedDesc, quotaBlockingPinsDesc, statusWritesDesc} {
		ch <- d
	}
}

// Collect sends every quota's series.
func (c *quotaCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ref, v := range c.byRef {
		labels := []string{ref.Kind, ref.Namespace, ref.Name}
		ch <- prometheus.MustNewConstMetric(statusWritesDesc, prometheus.CounterValue, v.statusWrites, labels...)
		if !v.computed {
			continue
		}
		for _, l := range v.hard {
			ch <- prometheus.MustNewConstMetric(quotaHardDesc, prometheus.GaugeValue, l.value, append(labels, l.name)...)
		}
		for _, l := range v.used {
			ch <- prometheus.MustNewConstMetric(quotaUsedDesc, prometheus.GaugeValue, l.value, append(labels, l.name)...)
		}
		ch <- prometheus.MustNewConstMetric(quotaConflictsDesc, prometheus.GaugeValue, v.conflicts, labels...)
		ch <- prometheus.MustNewConstMetric(quotaBlockedDesc, prometheus.GaugeValue, v.blocked, labels...)
		ch <- prometheus.MustNewConstMetric(quotaBlockingPinsDesc, prometheus.GaugeValue, v.pins, labels...)
	}
}
