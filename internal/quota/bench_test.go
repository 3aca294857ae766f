package quota

import (
	"fmt"
	"testing"
	"time"

	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// benchWorld is 10,000 archives in 100 namespaces (10 pods of 2 containers, 5 archives
// each) under 20 quotas of every kind: 10 namespace quotas, 4 naming containers, 4 with
// pod selectors and 2 cluster quotas.
func benchWorld(b *testing.B) ([]Archive, []*policy.Quota, map[string]map[string]string) {
	var quotas []*policy.Quota
	add := collect(b, &quotas)
	for i := range 10 {
		add(policy.FromCheckpointQuota(builder.Quota("default", fmt.Sprintf("ns-%d", i*10)).Total(30, "").PerPod(4, "").Obj()))
	}
	for i := range 4 {
		add(policy.FromCheckpointQuota(builder.Quota("app", fmt.Sprintf("ns-%d", i*10+1)).ContainerNames("app").PerContainer(2, "").Obj()))
		add(policy.FromCheckpointQuota(builder.Quota("tier", fmt.Sprintf("ns-%d", i*10+2)).PodSelector(map[string]string{"tier": "cache"}).PerPod(3, "300Ki").Obj()))
	}
	add(policy.FromClusterQuota(builder.ClusterQuota("default").PerContainer(4, "").MaxAge("2h").Obj()))
	add(policy.FromClusterQuota(builder.ClusterQuota("prod").NamespaceSelector(map[string]string{"env": "prod"}).PerNamespace(80, "").MaxCheckpointSize("1Mi").Obj()))

	nsLabels := map[string]map[string]string{}
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var archives []Archive
	for n := range 100 {
		ns := fmt.Sprintf("ns-%d", n)
		nsLabels[ns] = map[string]string{"env": []string{"prod", "dev"}[n%2]}
		for p := range 10 {
			for _, c := range []string{"app", "sidecar"} {
				for i := range 5 {
					archives = append(archives, Archive{
						Name: fmt.Sprintf("pod-%d-%s-%d", p, c, i), Namespace: ns, Pod: fmt.Sprintf("pod-%d", p),
						PodUID: fmt.Sprintf("%s-pod-%d", ns, p), Container: c, Node: fmt.Sprintf("node-%d", p%4),
						Size: 72 << 10, CheckpointTime: t0.Add(time.Duration(-i) * 30 * time.Minute),
					})
				}
			}
		}
	}
	return archives, quotas, nsLabels
}

// BenchmarkCompute10k is a full recompute: resolving every container's limits through
// internal/policy, usage per scope, the archives to prune and every quota's report.
func BenchmarkCompute10k(b *testing.B) {
	archives, quotas, nsLabels := benchWorld(b)
	recompute(b, archives, quotas, nsLabels)
}

// BenchmarkCompute100k is the full recompute of the scale run (make bench-scale) without
// the cluster: 100,000 archives in 1,000 namespaces (10 pods of 2 containers, 5 archives
// each) on 1,000 nodes, under 300 quotas: 250 namespace quotas (total and per pod, a
// quarter with pod selectors) and 50 cluster quotas (per container and maxAge, each
// selecting a tenth of the namespaces by label).
func BenchmarkCompute100k(b *testing.B) {
	archives, quotas, nsLabels := world100k(b)
	recompute(b, archives, quotas, nsLabels)
}

// BenchmarkIncremental100k is what a pass computes in the same world when one namespace
// changed: that namespace resolved and computed again, and every namespace's part merged.
func BenchmarkIncremental100k(b *testing.B) {
	archives, quotas, nsLabels := world100k(b)
	podLabels := map[string]string{"tier": "cache"}
	labels := Labels{Namespaces: nsLabels, Pod: func(*Archive) map[string]string { return podLabels }}
	now := time.Date(2025, 3, 1, 12, 30, 0, 0, time.UTC)
	part := func(own []Archive) *Part {
		r := Govern(quotas, own, labels)
		return ComputePart(Input{Archives: own, Quotas: r.Quotas, Rules: r.Rules, Now: now}, r)
	}
	var parts []*Part
	for start := 0; start < len(archives); start += 100 {
		parts = append(parts, part(archives[start:start+100:start+100]))
	}
	var res Result
	b.ReportAllocs()
	for b.Loop() {
		parts[7] = part(archives[700:800:800])
		_, r, out := Merge(quotas, parts)
		for i := range quotas {
			_ = r.Effective(i)
		}
		res = out
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/pass")
	b.ReportMetric(float64(len(res.Prune)), "pruned")
}

// world100k is the world of BenchmarkCompute100k, archives grouped by namespace.
func world100k(b *testing.B) ([]Archive, []*policy.Quota, map[string]map[string]string) {
	var quotas []*policy.Quota
	add := collect(b, &quotas)
	for i := range 250 {
		q := builder.Quota("default", fmt.Sprintf("ns-%d", i*4)).Total(60, "").PerPod(8, "")
		if i%4 == 0 {
			q = builder.Quota("tier", fmt.Sprintf("ns-%d", i*4)).PodSelector(map[string]string{"tier": "cache"}).PerPod(3, "300Ki")
		}
		add(policy.FromCheckpointQuota(q.Obj()))
	}
	for i := range 50 {
		add(policy.FromClusterQuota(builder.ClusterQuota(fmt.Sprintf("cluster-%d", i)).
			NamespaceSelector(map[string]string{"team": fmt.Sprint(i % 10)}).PerContainer(4, "").MaxAge("2h").Obj()))
	}
	nsLabels := map[string]map[string]string{}
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	archives := make([]Archive, 0, 100_000)
	for n := range 1000 {
		ns := fmt.Sprintf("ns-%d", n)
		nsLabels[ns] = map[string]string{"team": fmt.Sprint(n % 10)}
		for p := range 10 {
			for _, c := range []string{"app", "sidecar"} {
				for i := range 5 {
					archives = append(archives, Archive{
						Name: fmt.Sprintf("pod-%d-%s-%d", p, c, i), Namespace: ns, Pod: fmt.Sprintf("pod-%d", p),
						PodUID: fmt.Sprintf("%s-pod-%d", ns, p), Container: c, Node: fmt.Sprintf("node-%d", (n*10+p)%1000),
						Size: 72 << 10, CheckpointTime: t0.Add(time.Duration(-i)*30*time.Minute - time.Duration(n)*time.Second),
					})
				}
			}
		}
	}
	return archives, quotas, nsLabels
}

// recompute measures what one pass of the manager computes: resolving every archive (every
// pod labelled tier=cache), Compute, and every quota's effective limits.
func recompute(b *testing.B, archives []Archive, quotas []*policy.Quota, nsLabels map[string]map[string]string) {
	podLabels := map[string]string{"tier": "cache"}
	now := time.Date(2025, 3, 1, 12, 30, 0, 0, time.UTC)
	var res Result
	b.ReportAllocs()
	for b.Loop() {
		r := Govern(quotas, archives, Labels{Namespaces: nsLabels, Pod: func(*Archive) map[string]string { return podLabels }})
		res = Compute(Input{Archives: archives, Quotas: r.Quotas, Rules: r.Rules, Now: now})
		for i := range quotas {
			_ = r.Effective(i)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/recompute")
	b.ReportMetric(float64(len(res.Prune)), "pruned")
}
