package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// The chart's Grafana dashboard and PrometheusRule are checked without Grafana or Prometheus:
// every metric name their queries use must be on the /metrics endpoint of the running
// binaries, once the cluster has had a prune, a pinned archive and an unreadable archive.
var _ = Describe("the chart's dashboard and alerts", func() {
	It("use only metrics that the running manager and agent export", func(ctx SpecContext) {
		ns, err := env.CreateNamespace(ctx, "metrics")
		Expect(err).NotTo(HaveOccurred())
		uid := createPod(ctx, ns, "cache-0", "redis")
		_, stderr, err := env.Kubectl("apiVersion: checkpointquota.dev/v1alpha1\nkind: CheckpointQuota\nmetadata: {name: one, namespace: "+ns+"}\nspec: {limits: {perContainer: {checkpoints: 1}}}\n", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), stderr)
		base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
		var names []string
		for i := range 2 {
			names = append(names, filepath.Base(archive.New(ns, "cache-0", "redis").WithUID(uid).At(base.Add(time.Duration(i)*time.Minute)).MustWrite(ckptDir)))
		}
		// Unreadable: kept on disk, and reported (modified long ago: not taken for an archive still being written).
		broken := archive.New(ns, "cache-0", "redis").WithUID(uid).At(base.Add(5 * time.Minute)).Damaged(archive.NotTar).ModifiedAt(base).MustWrite(ckptDir)
		DeferCleanup(os.Remove, broken)
		Eventually(filesOf, 60*time.Second).WithArguments(ns).Should(Equal([]string{names[1], filepath.Base(broken)}), "the older archive was not pruned")

		used := queriedMetrics()
		Expect(used).To(ContainElements("checkpointquota_quota_used", "checkpointquota_node_archives"), "the query parser found too little")
		Eventually(func(g Gomega) []string {
			have := exported(g, managerMetrics)
			for k := range exported(g, agentMetrics) {
				have[k] = true
			}
			var missing []string
			for _, m := range used {
				if !have[m] {
					missing = append(missing, m)
				}
			}
			return missing
		}, 30*time.Second, time.Second).Should(BeEmpty(), "metrics the dashboard or the alerts use that no binary exports")
	})
})

// queriedMetrics lists the metric names in the expressions of the chart's PrometheusRule and
// in the queries of its dashboard.
func queriedMetrics() []string {
	GinkgoHelper()
	chart := filepath.Join(testenv.RepoRoot(), "charts", "checkpoint-quota")
	rules, err := os.ReadFile(filepath.Join(chart, "templates", "monitoring.yaml"))
	Expect(err).NotTo(HaveOccurred())
	var exprs []string
	for _, m := range regexp.MustCompile(`(?m)^\s+expr: (.+)$`).FindAllStringSubmatch(string(rules), -1) {
		exprs = append(exprs, m[1])
	}
	Expect(exprs).To(HaveLen(4), "the PrometheusRule's alerts")

	raw, err := os.ReadFile(filepath.Join(chart, "files", "dashboard.json"))
	Expect(err).NotTo(HaveOccurred())
	var dash struct {
		Panels []struct {
			Targets []struct{ Expr string } `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Query any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	Expect(json.Unmarshal(raw, &dash)).To(Succeed())
	for _, p := range dash.Panels {
		Expect(p.Targets).NotTo(BeEmpty())
		for _, t := range p.Targets {
			exprs = append(exprs, t.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			exprs = append(exprs, q["query"].(string))
		}
	}

	set := map[string]bool{}
	for _, e := range exprs {
		for _, name := range metricNames(e) {
			set[name] = true
		}
	}
	var out []string
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

var (
	// Label matchers, label lists of by/on/without, range and offset selectors, Grafana
	// variables, the label of Grafana's label_values(metric, label) and quoted strings hold
	// no metric names.
	promqlNoise = []*regexp.Regexp{
		regexp.MustCompile(`,\s*\w+\s*\)\s*$`),
		regexp.MustCompile(`\{[^}]*\}`),
		regexp.MustCompile(`\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)`),
		regexp.MustCompile(`\[[^\]]*\]`),
		regexp.MustCompile(`\$\w+`),
		regexp.MustCompile(`"[^"]*"`),
	}
	promqlIdent   = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	promqlKeyword = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true}
)

// metricNames returns the identifiers of a PromQL expression that name metrics: what is
// neither a function or aggregation (followed by a parenthesis), a keyword, a label nor a number.
func metricNames(expr string) []string {
	for _, re := range promqlNoise {
		expr = re.ReplaceAllString(expr, " ")
	}
	var out []string
	for _, m := range promqlIdent.FindAllString(expr, -1) {
		if strings.HasSuffix(m, "(") || promqlKeyword[strings.ToLower(m)] {
			continue
		}
		out = append(out, m)
	}
	return out
}

// exported is the set of sample names on a /metrics endpoint (a histogram's _bucket, _sum
// and _count included).
func exported(g Gomega, url string) map[string]bool {
	GinkgoHelper()
	resp, err := http.Get(url) //nolint:gosec,noctx // the test's own local endpoint
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	out := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		out[name] = true
	}
	return out
}
