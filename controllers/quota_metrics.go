package controllers

import (
	"sync"
	"unique"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
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
	// limitPairs are the label pairs of the limits' names, shared by every quota's series.
	limitPairs map[string]*dto.LabelPair
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

// Collect sends every quota's series. A scrape holds every series in memory at once (the
// registry gathers them all before it encodes them): as constant metrics, each series with
// its own four label pairs, a quota with nine limits took 9.2 KB for the time of a scrape,
// 46 MB for 5,000 (and 28 KB each of garbage), which took the manager's heap, and its RSS,
// that far above what it keeps (issue 29). Here a quota's three label pairs are made once
// per scrape and shared by its series, and a limit's pair once for every quota
// (quotaSeries): 5.7 KB (TestQuotaSeriesGatherLikeConstMetrics).
func (c *quotaCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ref, v := range c.byRef {
		// Sorted by name, as the registry wants them: kind, (limit,) name, namespace.
		labels := []*dto.LabelPair{labelPair("kind", ref.Kind), labelPair("name", ref.Name), labelPair("namespace", ref.Namespace)}
		ch <- &quotaSeries{desc: statusWritesDesc, labels: labels, counter: true, value: v.statusWrites}
		if !v.computed {
			continue
		}
		for _, l := range v.hard {
			ch <- &quotaSeries{desc: quotaHardDesc, labels: c.withLimit(labels, l.name), value: l.value}
		}
		for _, l := range v.used {
			ch <- &quotaSeries{desc: quotaUsedDesc, labels: c.withLimit(labels, l.name), value: l.value}
		}
		ch <- &quotaSeries{desc: quotaConflictsDesc, labels: labels, value: v.conflicts}
		ch <- &quotaSeries{desc: quotaBlockedDesc, labels: labels, value: v.blocked}
		ch <- &quotaSeries{desc: quotaBlockingPinsDesc, labels: labels, value: v.pins}
	}
}

// withLimit is a quota's label pairs with the limit's, in order.
func (c *quotaCollector) withLimit(quota []*dto.LabelPair, limit string) []*dto.LabelPair {
	p := c.limitPairs[limit]
	if p == nil {
		if c.limitPairs == nil {
			c.limitPairs = map[string]*dto.LabelPair{}
		}
		p = labelPair("limit", limit)
		c.limitPairs[limit] = p
	}
	return []*dto.LabelPair{quota[0], p, quota[1], quota[2]}
}

func labelPair(name, value string) *dto.LabelPair {
	return &dto.LabelPair{Name: &name, Value: &value}
}

// quotaSeries is one series of a quota, whose label pairs it shares with the quota's
// other series; nothing changes them once made.
type quotaSeries struct {
	desc    *prometheus.Desc
	labels  []*dto.LabelPair
	counter bool
	value   float64
}

func (s *quotaSeries) Desc() *prometheus.Desc { return s.desc }

func (s *quotaSeries) Write(m *dto.Metric) error {
	m.Label = s.labels
	if s.counter {
		m.Counter = &dto.Counter{Value: &s.value}
	} else {
		m.Gauge = &dto.Gauge{Value: &s.value}
	}
	return nil
}
