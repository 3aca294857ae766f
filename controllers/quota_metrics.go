package controllers

import (
	"bufio"
	"cmp"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

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

// The families of the quotas' series, in the order a scrape writes them. Each series is
// labelled kind, namespace and name (the quota's), and those of used and hard limit too.
var quotaFamilies = []quotaFamily{
	{name: "checkpointquota_quota_used", limits: quotaValues.used,
		help: "Usage measured against each limit of a quota: archives, or bytes for storage limits; for a per-scope limit, the scope nearest it."},
	{name: "checkpointquota_quota_hard", limits: quotaValues.hard,
		help: "Each limit of a quota in force: archives, or bytes for storage limits."},
	{name: "checkpointquota_quota_conflicts", value: func(v quotaValues) float64 { return v.conflicts },
		help: "Limits of a quota that another quota of the same specificity also sets for the same archives."},
	{name: "checkpointquota_quota_blocked_limits", value: func(v quotaValues) float64 { return v.blocked },
		help: "Limits of a quota that pinned archives keep from holding: pruning cannot bring them back (the OverQuota condition, reason PinnedCheckpoints)."},
	{name: "checkpointquota_quota_blocking_pinned_checkpoints", value: func(v quotaValues) float64 { return v.pins },
		help: "Pinned archives that keep a limit of a quota from holding (at most the names the status lists per limit)."},
	{name: "checkpointquota_status_writes_total", value: func(v quotaValues) float64 { return v.statusWrites }, counter: true, uncomputed: true,
		help: "Status writes per quota; coalesced to about one per second under load."},
}

// quotaFamily is one metric family of the quotas' series: a series per limit of a quota
// (limits, labelled limit too), or one per quota (value).
type quotaFamily struct {
	name, help string
	counter    bool
	limits     func(quotaValues) (names []string, values []float64)
	value      func(quotaValues) float64
	// uncomputed families have a series for a quota whose status was not computed yet.
	uncomputed bool
}

// quotaCollector holds every quota's metrics, which MetricsHandler writes.
type quotaCollector struct {
	mu    sync.Mutex
	byRef map[policy.Ref]*quotaValues
	// limitSets holds each set of limit names that a quota's hard or used has, sorted, by
	// the names joined: the quotas share them.
	limitSets map[string][]string
	// namePairs holds each pair of hard's and used's sets that a quota has, by the sets
	// joined: the quotas share them too.
	namePairs map[string]*limitNames
}

// limitNames are the limits of a quota's hard and of its used, shared with every quota
// that has the same.
type limitNames struct{ hard, used []string }

// quotaValues are one quota's metrics. It has no series until its status is computed,
// except status writes, counted from the first. With its entry in the map, a quota with
// nine limits keeps 337 bytes, from 657 as a list of name and value for each of hard and
// used, and 369 with the two lists of names in the struct (TestQuotaMetricsKeepLittle).
type quotaValues struct {
	// names are the limits of hard and used, shared with other quotas (nil until the
	// status is computed); values holds hard's values, then used's, in their order.
	names                    *limitNames
	values                   []float64
	conflicts, blocked, pins float64
	statusWrites             float64
	computed                 bool
}

func (v quotaValues) hard() ([]string, []float64) {
	if v.names == nil {
		return nil, nil
	}
	return v.names.hard, v.values[:len(v.names.hard)]
}

func (v quotaValues) used() ([]string, []float64) {
	if v.names == nil {
		return nil, nil
	}
	return v.names.used, v.values[len(v.names.hard):]
}

// namesOf are the limits of st's hard and used, as every quota with the same shares them.
// The caller holds c.mu.
func (c *quotaCollector) namesOf(st *cqv1.QuotaStatus) *limitNames {
	hard, used := c.limitSet(st.Hard), c.limitSet(st.Used)
	key := strings.Join(hard, "\n") + "\x00" + strings.Join(used, "\n")
	if shared, ok := c.namePairs[key]; ok {
		return shared
	}
	if c.namePairs == nil {
		c.namePairs = map[string]*limitNames{}
	}
	n := &limitNames{hard: hard, used: used}
	c.namePairs[key] = n
	return n
}

// limitSet is the names of m, sorted, as every quota with the same names shares them.
// The caller holds c.mu.
func (c *quotaCollector) limitSet(m map[string]resource.Quantity) []string {
	names := slices.Sorted(maps.Keys(m))
	key := strings.Join(names, "\n")
	if shared, ok := c.limitSets[key]; ok {
		return shared
	}
	if c.limitSets == nil {
		c.limitSets = map[string][]string{}
	}
	c.limitSets[key] = names
	return names
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
	v.names, v.computed = c.namesOf(st), true
	// A new list, never one changed in place: a scrape reads the one it copied unlocked.
	v.values = make([]float64, 0, len(v.names.hard)+len(v.names.used))
	for _, n := range v.names.hard {
		q := st.Hard[n]
		v.values = append(v.values, q.AsApproximateFloat64())
	}
	for _, n := range v.names.used {
		q := st.Used[n]
		v.values = append(v.values, q.AsApproximateFloat64())
	}
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

// quotaEntry is one quota's metrics as a scrape finds them.
type quotaEntry struct {
	ref    policy.Ref
	values *quotaValues
}

// entries are every quota's metrics, in the order of kind, namespace and name.
func (c *quotaCollector) entries() []quotaEntry {
	c.mu.Lock()
	out := make([]quotaEntry, 0, len(c.byRef))
	for ref, v := range c.byRef {
		out = append(out, quotaEntry{ref, v})
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b quotaEntry) int {
		return cmp.Or(cmp.Compare(a.ref.Kind, b.ref.Kind), cmp.Compare(a.ref.Namespace, b.ref.Namespace), cmp.Compare(a.ref.Name, b.ref.Name))
	})
	return out
}

// writeText writes every quota's series in Prometheus' text format, family by family, one
// series after another as it reads them. Gathered through a Prometheus registry, a scrape
// held every series of every quota at once before it encoded the first (the registry
// makes a dto.Metric of each): 5.7 KB per quota with nine limits, 28 MB for 5,000, and 16
// KB per quota allocated, on a heap whose next goal is then twice that (issue 29). Here a
// scrape holds one entry per quota (the quota's reference and its values' address) and
// one quota's values at a time, copied under the lock: set replaces a quota's lists of
// limits, never changes them, so the copy needs no lock to be read.
func (c *quotaCollector) writeText(w *bufio.Writer) error {
	entries := c.entries()
	for _, f := range quotaFamilies {
		if len(entries) == 0 {
			break
		}
		typ := "gauge"
		if f.counter {
			typ = "counter"
		}
		_, _ = w.WriteString("# HELP " + f.name + " " + f.help + "\n# TYPE " + f.name + " " + typ + "\n")
		for _, e := range entries {
			c.mu.Lock()
			v := *e.values
			c.mu.Unlock()
			switch {
			case !v.computed && !f.uncomputed:
			case f.limits != nil:
				names, values := f.limits(v)
				for i, name := range names {
					writeSeries(w, f.name, e.ref, name, values[i])
				}
			default:
				writeSeries(w, f.name, e.ref, "", f.value(v))
			}
		}
		// A client gone away shows here: a buffered writer keeps its first error.
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// writeSeries writes one series of a quota, as the text format's encoder
// (expfmt.MetricFamilyToText) writes it: labels by name, kind, limit (when set), name,
// namespace.
func writeSeries(w *bufio.Writer, family string, ref policy.Ref, limit string, value float64) {
	_, _ = w.WriteString(family)
	writeLabel(w, '{', "kind", ref.Kind)
	if limit != "" {
		writeLabel(w, ',', "limit", limit)
	}
	writeLabel(w, ',', "name", ref.Name)
	writeLabel(w, ',', "namespace", ref.Namespace)
	_, _ = w.WriteString("} ")
	// Appended to the writer's own buffer (bufio's idiom): a buffer of this function's
	// would be allocated for every series, as Write may hand it on.
	_, _ = w.Write(append(textValue(w.AvailableBuffer(), value), '\n'))
}

// writeLabel writes a label after sep, its value escaped as the text format wants.
func writeLabel(w *bufio.Writer, sep byte, name, value string) {
	_ = w.WriteByte(sep)
	_, _ = w.WriteString(name)
	_, _ = w.WriteString(`="`)
	if !strings.ContainsAny(value, "\\\"\n") {
		_, _ = w.WriteString(value)
		_ = w.WriteByte('"')
		return
	}
	for i := range len(value) {
		switch b := value[i]; b {
		case '\\':
			_, _ = w.WriteString(`\\`)
		case '"':
			_, _ = w.WriteString(`\"`)
		case '\n':
			_, _ = w.WriteString(`\n`)
		default:
			_ = w.WriteByte(b)
		}
	}
	_ = w.WriteByte('"')
}

// textValue appends a sample's value as the text format writes it.
func textValue(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
