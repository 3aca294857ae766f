package controllers

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/api/resource"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// TestQuotaMetricsFollowTheStatus checks that a quota's series are those of its latest
// status, others' untouched, that status writes are counted, and that a deleted quota's
// series go.
func TestQuotaMetricsFollowTheStatus(t *testing.T) {
	c := &quotaCollector{byRef: map[policy.Ref]*quotaValues{}}
	a := policy.Ref{Kind: policy.KindQuota, Namespace: "shop", Name: "a"}
	b := policy.Ref{Kind: policy.KindClusterQuota, Name: "b"}
	status := func(limits ...string) *cqv1.QuotaStatus {
		st := &cqv1.QuotaStatus{Hard: map[string]resource.Quantity{}, Used: map[string]resource.Quantity{}}
		for _, l := range limits {
			st.Hard[l], st.Used[l] = resource.MustParse("5"), resource.MustParse("1")
		}
		return st
	}
	blocked := &QuotaView{Result: quota.Outcome{Blocked: []quota.Block{{Pinned: []string{"x", "y"}}, {Pinned: []string{"x"}}}}}
	c.set(a, status("perPod.checkpoints", "total.storage"), &QuotaView{})
	c.set(b, status("perPod.checkpoints"), blocked)
	c.wrote(a)
	c.set(a, status("total.storage"), &QuotaView{})
	c.wrote(a)
	want := []string{
		"checkpointquota_quota_blocked_limits ClusterCheckpointQuota//b 2",
		"checkpointquota_quota_blocked_limits CheckpointQuota/shop/a 0",
		"checkpointquota_quota_blocking_pinned_checkpoints ClusterCheckpointQuota//b 2",
		"checkpointquota_quota_blocking_pinned_checkpoints CheckpointQuota/shop/a 0",
		"checkpointquota_quota_conflicts ClusterCheckpointQuota//b 0",
		"checkpointquota_quota_conflicts CheckpointQuota/shop/a 0",
		"checkpointquota_quota_hard ClusterCheckpointQuota//b/perPod.checkpoints 5",
		"checkpointquota_quota_hard CheckpointQuota/shop/a/total.storage 5",
		"checkpointquota_quota_used ClusterCheckpointQuota//b/perPod.checkpoints 1",
		"checkpointquota_quota_used CheckpointQuota/shop/a/total.storage 1",
		"checkpointquota_status_writes_total ClusterCheckpointQuota//b 0",
		"checkpointquota_status_writes_total CheckpointQuota/shop/a 2",
	}
	sort.Strings(want)
	if diff := cmp.Diff(want, scraped(t, c)); diff != "" {
		t.Errorf("series (-want +got):\n%s", diff)
	}
	c.forget(a)
	c.forget(b)
	if got := scraped(t, c); len(got) != 0 {
		t.Errorf("series left after both quotas were deleted: %v", got)
	}
}

// scraped reads "name kind/namespace/name[/limit] value" of every quota series that c
// writes, sorted, through the text format's parser.
func scraped(t *testing.T, c *quotaCollector) []string {
	t.Helper()
	var text bytes.Buffer
	w := bufio.NewWriter(&text)
	if err := c.writeText(w); err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(&text)
	if err != nil {
		t.Fatalf("the quotas' series do not parse: %v", err)
	}
	var out []string
	for name, f := range families {
		for _, m := range f.GetMetric() {
			byName := map[string]string{}
			for _, l := range m.GetLabel() {
				byName[l.GetName()] = l.GetValue()
			}
			labels := []string{byName["kind"], byName["namespace"], byName["name"]}
			if l, ok := byName["limit"]; ok {
				labels = append(labels, l)
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out = append(out, name+" "+strings.Join(labels, "/")+" "+fmt.Sprint(v))
		}
	}
	sort.Strings(out)
	return out
}

// constQuotaMetrics is a Prometheus collector of c's series as constant metrics, as the
// registry served them before the quotas' series were written as they are read: the
// reference for TestQuotaSeriesScrapeLikeTheRegistry.
type constQuotaMetrics struct{ *quotaCollector }

func (c constQuotaMetrics) desc(f quotaFamily) *prometheus.Desc {
	labels := []string{"kind", "namespace", "name"}
	if f.limits != nil {
		labels = append(labels, "limit")
	}
	return prometheus.NewDesc(f.name, f.help, labels, nil)
}

func (c constQuotaMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range quotaFamilies {
		ch <- c.desc(f)
	}
}

func (c constQuotaMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, f := range quotaFamilies {
		d, typ := c.desc(f), prometheus.GaugeValue
		if f.counter {
			typ = prometheus.CounterValue
		}
		for ref, v := range c.byRef {
			labels := []string{ref.Kind, ref.Namespace, ref.Name}
			switch {
			case !v.computed && !f.uncomputed:
			case f.limits != nil:
				names, values := f.limits(*v)
				for i, name := range names {
					ch <- prometheus.MustNewConstMetric(d, typ, values[i], append(labels, name)...)
				}
			default:
				ch <- prometheus.MustNewConstMetric(d, typ, f.value(*v), labels...)
			}
		}
	}
}

// registryText is what a pedantic registry (which checks each series against its
// description) serves of c in the text format.
func registryText(t *testing.T, c prometheus.Collector) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, f := range families {
		if _, err := expfmt.MetricFamilyToText(&text, f); err != nil {
			t.Fatal(err)
		}
	}
	return text.String()
}

// sortedSeries is text with the series of each family sorted: the registry sorts them by
// their labels' values, the quotas' writer by quota.
func sortedSeries(text string) string {
	var out, series []string
	flush := func() {
		slices.Sort(series)
		out, series = append(out, series...), nil
	}
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, "#") {
			flush()
			out = append(out, line)
			continue
		}
		series = append(series, line)
	}
	flush()
	return strings.Join(out, "")
}

// maximalMetrics is a collector of quotas quotas with nine limits each, one cluster quota
// not computed yet, and one whose name needs escaping in the text format.
func maximalMetrics(quotas int) *quotaCollector {
	c := &quotaCollector{byRef: map[policy.Ref]*quotaValues{}}
	limits := []string{"total.checkpoints", "total.storage", "perPod.checkpoints", "perPod.storage",
		"perContainer.checkpoints", "perContainer.storage", "maxCheckpointSize", "perNamespace.checkpoints", "perNamespace.storage"}
	for i := range quotas {
		st := &cqv1.QuotaStatus{Hard: map[string]resource.Quantity{}, Used: map[string]resource.Quantity{}}
		for j, l := range limits {
			st.Hard[l], st.Used[l] = *resource.NewQuantity(int64(100+j), resource.DecimalSI), *resource.NewQuantity(int64(i%7), resource.DecimalSI)
		}
		ref := policy.Ref{Kind: policy.KindQuota, Namespace: fmt.Sprintf("tenant-%05d", i), Name: "maximal"}
		c.set(ref, st, &QuotaView{})
		c.wrote(ref)
	}
	c.wrote(policy.Ref{Kind: policy.KindClusterQuota, Name: "not-computed"})
	odd := policy.Ref{Kind: policy.KindClusterQuota, Name: "a\"b\\c\nd"}
	c.set(odd, &cqv1.QuotaStatus{Hard: map[string]resource.Quantity{"total.storage": resource.MustParse("1.5Gi")}}, &QuotaView{})
	return c
}

// TestQuotaSeriesScrapeLikeTheRegistry checks that the quotas' series, written as they are
// read, are exactly what a pedantic Prometheus registry serves of the same values as
// constant metrics (the text, escaping and values alike; only the order of a family's
// series differs), and that the whole scrape parses.
func TestQuotaSeriesScrapeLikeTheRegistry(t *testing.T) {
	c := maximalMetrics(50)
	var text bytes.Buffer
	w := bufio.NewWriter(&text)
	if err := c.writeText(w); err != nil {
		t.Fatal(err)
	}
	want := registryText(t, constQuotaMetrics{c})
	// The registry writes its families by name; the writer in quotaFamilies' order.
	var blocks []string
	for block := range strings.SplitSeq(text.String(), "# HELP ") {
		if block != "" {
			blocks = append(blocks, "# HELP "+block)
		}
	}
	slices.Sort(blocks)
	if diff := cmp.Diff(sortedSeries(want), sortedSeries(strings.Join(blocks, ""))); diff != "" {
		t.Errorf("the quotas' series (-registry +written):\n%s", diff)
	}
	if len(scraped(t, c)) == 0 {
		t.Error("nothing parsed")
	}
}

// discard is a ResponseWriter that keeps only the status and the headers.
type discard struct{ header http.Header }

func (d *discard) Header() http.Header         { return d.header }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

// TestMetricsScrapeHoldsLittlePerQuota checks what a scrape of the manager's metrics
// allocates per quota: through a Prometheus registry, which gathers every series before it
// writes one (as controller-runtime's handler serves it), a quota with nine limits took 16
// KB and held 5.7 KB of it until the scrape was done (28 MB held for 5,000 quotas); written
// as they are read, its 22 series take a few dozen bytes.
func TestMetricsScrapeHoldsLittlePerQuota(t *testing.T) {
	const quotas = 2000
	saved := quotaMetrics
	quotaMetrics = maximalMetrics(quotas)
	defer func() { quotaMetrics = saved }()
	scrape := func(h http.Handler) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		h.ServeHTTP(&discard{header: http.Header{}}, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		runtime.ReadMemStats(&after)
		return (after.TotalAlloc - before.TotalAlloc) / quotas
	}
	empty := prometheus.NewRegistry()
	handler := MetricsHandler(empty)
	scrape(handler) // the first scrape's one-time costs (the text encoder's pools)
	written := scrape(handler)
	reg := prometheus.NewRegistry()
	reg.MustRegister(constQuotaMetrics{quotaMetrics})
	gathered := scrape(MetricsHandler(reg))
	t.Logf("a scrape allocates %d bytes per quota, %d through a registry", written, gathered)
	if written > 256 {
		t.Errorf("a scrape allocates %d bytes per quota, want at most 256 (a registry: %d)", written, gathered)
	}
}

// TestMetricsHandlerServes checks what MetricsHandler serves: the registry's families, then
// the quotas', parsed as Prometheus' text format, gzipped when asked.
func TestMetricsHandlerServes(t *testing.T) {
	saved := quotaMetrics
	quotaMetrics = maximalMetrics(3)
	defer func() { quotaMetrics = saved }()
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "other", Help: "Another family."}, func() float64 { return 7 }))
	for name, gz := range map[string]bool{"plain": false, "gzip": true} {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			if gz {
				req.Header.Set("Accept-Encoding", "deflate, gzip;q=0.8")
			}
			rec := httptest.NewRecorder()
			MetricsHandler(reg).ServeHTTP(rec, req)
			if got, want := rec.Header().Get("Content-Type"), "text/plain; version=0.0.4; charset=utf-8"; got != want {
				t.Errorf("Content-Type %q, want %q", got, want)
			}
			var body io.Reader = rec.Body
			if gz {
				if rec.Header().Get("Content-Encoding") != "gzip" {
					t.Fatalf("not gzipped: headers %v", rec.Header())
				}
				r, err := gzip.NewReader(rec.Body)
				if err != nil {
					t.Fatal(err)
				}
				body = r
			}
			parser := expfmt.NewTextParser(model.UTF8Validation)
			families, err := parser.TextToMetricFamilies(body)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for n, f := range families {
				names = append(names, fmt.Sprintf("%s %d", n, len(f.GetMetric())))
			}
			sort.Strings(names)
			want := []string{
				"checkpointquota_quota_blocked_limits 4",
				"checkpointquota_quota_blocking_pinned_checkpoints 4",
				"checkpointquota_quota_conflicts 4",
				"checkpointquota_quota_hard 28",
				"checkpointquota_quota_used 27",
				"checkpointquota_status_writes_total 5",
				"other 1",
			}
			if diff := cmp.Diff(want, names); diff != "" {
				t.Errorf("families and their series (-want +got):\n%s", diff)
			}
		})
	}
	if acceptsGzip(&http.Request{Header: http.Header{"Accept-Encoding": {"gzip;q=0, identity"}}}) {
		t.Error("gzip;q=0 taken for gzip")
	}
}

// TestQuotaMetricsKeepLittle checks what the quotas' metrics keep per quota with nine
// limits, its entry in the collector's map included: 657 bytes when hard and used were each
// a list of names and values, 369 with the values alone in one list and the names shared by
// the quotas with the same limits (both fail here), 337 with the two lists of names behind
// one shared pointer.
func TestQuotaMetricsKeepLittle(t *testing.T) {
	const quotas = 5000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := maximalMetrics(quotas)
	runtime.GC()
	runtime.ReadMemStats(&after)
	kept := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / quotas
	runtime.KeepAlive(c)
	t.Logf("the metrics keep %d bytes per quota", kept)
	if kept > 352 {
		t.Errorf("the metrics keep %d bytes per quota with nine limits, want at most 352", kept)
	}
}
