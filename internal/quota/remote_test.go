package quota

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// parseAll parses builders of either quota kind, failing the test on a parse error.
func parseAll(t *testing.T, quotas ...any) []*policy.Quota {
	t.Helper()
	var out []*policy.Quota
	add := collect(t, &out)
	for _, q := range quotas {
		switch q := q.(type) {
		case *builder.QuotaBuilder:
			add(policy.FromCheckpointQuota(q.Obj()))
		case *builder.ClusterQuotaBuilder:
			add(policy.FromClusterQuota(q.Obj()))
		}
	}
	return out
}

// computeRemote computes the remote tier as the manager does: the twins of the quotas
// that set remoteLimits, over the stored archives.
func computeRemote(quotas []*policy.Quota, stored []Archive, now time.Time) (Input, *Governance, Result, []int) {
	twins, of := Remote(quotas)
	in, gov := InputOf(twins, stored, Labels{}, now)
	return in, gov, Compute(in), of
}

// TestRemoteLimits checks the rules of the remote tier: remoteLimits bound the stored
// archives as limits bind those on nodes, a ClusterCheckpointQuota's remoteLimits are
// ceilings for a CheckpointQuota's, the node limits play no part, and pinned stored
// archives count but stay.
func TestRemoteLimits(t *testing.T) {
	// 8 archives of app-0 (9 to 2 minutes old at now), 4 of app-1 (9 to 6); and 3 of
	// another namespace's pod.
	tenant := concat(archives("tenant", "app-0", "app", 8, 1), archives("tenant", "app-1", "app", 4, 1))
	other := archives("other", "db-0", "db", 3, 1)
	now := t0.Add(9 * time.Minute)
	cases := map[string]struct {
		quotas []any
		stored []Archive
		pin    []string
		// want are the stored archives pruned, oldest first.
		want []string
		// wantRules are the rules that prune them, in order, without repeats.
		wantRules []string
	}{
		"remoteLimits.total of a namespace quota without a target bounds the namespace": {
			quotas:    []any{builder.Quota("mine", "tenant").RemoteTotal(10, "")},
			stored:    tenant,
			want:      []string{"app-0-app-0", "app-1-app-0"},
			wantRules: []string{"remoteLimits.total.checkpoints"},
		},
		"a namespace quota's remoteLimits above the cluster's are capped at the cluster's": {
			quotas: []any{builder.ClusterQuota("default").RemotePerNamespace(5, ""), builder.Quota("mine", "tenant").RemoteTotal(1000, "")},
			stored: tenant,
			want:   []string{"app-0-app-0", "app-1-app-0", "app-0-app-1", "app-1-app-1", "app-0-app-2", "app-1-app-2", "app-0-app-3"},
			// The ceiling holds beside the quota's own limit; the cluster quota's prunes.
			wantRules: []string{"remoteLimits.perNamespace.checkpoints"},
		},
		"a namespace quota's remoteLimits below the cluster's tighten them": {
			quotas:    []any{builder.ClusterQuota("default").RemotePerNamespace(10, ""), builder.Quota("mine", "tenant").RemoteTotal(9, "")},
			stored:    tenant,
			want:      []string{"app-0-app-0", "app-1-app-0", "app-0-app-1"},
			wantRules: []string{"remoteLimits.total.checkpoints"},
		},
		"a pod quota's remote perPod above the cluster's is capped": {
			quotas:    []any{builder.ClusterQuota("default").RemotePerPod(6, ""), builder.Quota("mine", "tenant").PodNames("app-0").RemotePerPod(100, "")},
			stored:    tenant,
			want:      []string{"app-0-app-0", "app-0-app-1"},
			wantRules: []string{"remoteLimits.perPod.checkpoints"},
		},
		"storage counts bytes": {
			quotas:    []any{builder.ClusterQuota("default").RemotePerContainer(-1, "3")},
			stored:    archives("tenant", "app-1", "app", 4, 1),
			want:      []string{"app-1-app-0"},
			wantRules: []string{"remoteLimits.perContainer.storage"},
		},
		"remoteLimits.maxAge deletes what is older": {
			quotas:    []any{builder.ClusterQuota("default").RemoteMaxAge("8m30s")},
			stored:    tenant,
			want:      []string{"app-0-app-0", "app-1-app-0"},
			wantRules: []string{"remoteLimits.maxAge"},
		},
		"a namespace quota's remote maxAge above the cluster's is capped": {
			quotas:    []any{builder.ClusterQuota("default").RemoteMaxAge("8m30s"), builder.Quota("mine", "tenant").RemoteMaxAge("720h")},
			stored:    tenant,
			want:      []string{"app-0-app-0", "app-1-app-0"},
			wantRules: []string{"remoteLimits.maxAge"},
		},
		"node limits and maxAge do not bound the remote tier": {
			quotas: []any{builder.ClusterQuota("default").PerNamespace(1, "").MaxAge("1s").Offload("archive"), builder.Quota("mine", "tenant").Total(1, "")},
			stored: tenant,
		},
		"a namespace quota's remoteLimits reach no other namespace": {
			quotas:    []any{builder.Quota("mine", "tenant").RemoteTotal(0, "")},
			stored:    concat(other, archives("tenant", "app-1", "app", 2, 1)),
			want:      []string{"app-1-app-0", "app-1-app-1"},
			wantRules: []string{"remoteLimits.total.checkpoints"},
		},
		"a cluster quota's remoteLimits.total counts every namespace together": {
			quotas: []any{builder.ClusterQuota("default").RemoteTotal(4, "")},
			stored: concat(other, archives("tenant", "app-1", "app", 4, 1)),
			// Equal times go by namespace: other's first.
			want:      []string{"db-0-db-0", "app-1-app-0", "db-0-db-1"},
			wantRules: []string{"remoteLimits.total.checkpoints"},
		},
		"pinned stored archives count and stay; the next oldest go": {
			quotas:    []any{builder.Quota("mine", "tenant").RemoteTotal(2, "")},
			stored:    archives("tenant", "app-1", "app", 4, 1),
			pin:       []string{"app-1-app-0"},
			want:      []string{"app-1-app-1", "app-1-app-2"},
			wantRules: []string{"remoteLimits.total.checkpoints"},
		},
		"a DryRun quota's remoteLimits delete nothing": {
			quotas: []any{builder.Quota("mine", "tenant").RemoteTotal(0, "").Enforcement(cqv1.EnforcementDryRun)},
			stored: tenant,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			stored := append([]Archive(nil), tc.stored...)
			for i := range stored {
				for _, p := range tc.pin {
					stored[i].Pinned = stored[i].Pinned || stored[i].Name == p
				}
			}
			in, _, res, _ := computeRemote(parseAll(t, tc.quotas...), stored, now)
			if diff := cmp.Diff(tc.want, prunedNames(in, res)); diff != "" {
				t.Errorf("pruned (-want +got):\n%s", diff)
			}
			var rules []string
			for _, p := range res.Prune {
				if len(rules) == 0 || rules[len(rules)-1] != p.Rule {
					rules = append(rules, p.Rule)
				}
			}
			if diff := cmp.Diff(tc.wantRules, rules); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRemoteTwins checks which quotas have a remote twin, and that a twin's indices lead
// back to its quota.
func TestRemoteTwins(t *testing.T) {
	quotas := parseAll(t,
		builder.ClusterQuota("nodes-only").PerNamespace(5, ""),
		builder.ClusterQuota("both").PerNamespace(5, "").RemotePerNamespace(50, "10Gi"),
		builder.Quota("mine", "tenant").RemoteMaxAge("720h"))
	twins, of := Remote(quotas)
	if diff := cmp.Diff([]int{1, 2}, of); diff != "" {
		t.Errorf("twins' quotas (-want +got):\n%s", diff)
	}
	for i, tw := range twins {
		if tw.Ref != quotas[of[i]].Ref || tw.Specificity != quotas[of[i]].Specificity {
			t.Errorf("twin %d is %s (%v); want %s's reference and specificity", i, tw.Ref, tw.Specificity, quotas[of[i]].Ref)
		}
	}
	var names []string
	for _, tw := range twins {
		for _, k := range tw.Keys() {
			l := tw.Limit(k)
			names = append(names, l.Name+" "+l.Path.String()+" "+l.Written)
		}
	}
	want := []string{
		"remoteLimits.perNamespace.checkpoints spec.remoteLimits.perNamespace.checkpoints 50",
		"remoteLimits.perNamespace.storage spec.remoteLimits.perNamespace.storage 10Gi",
		"remoteLimits.maxAge spec.remoteLimits.maxAge 720h",
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("the twins' limits (-want +got):\n%s", diff)
	}
}

// TestRemoteCapsAreReported checks what a CheckpointQuota whose remoteLimits a cluster
// quota caps reports: capped by the cluster quota at its value, as on nodes, and its usage
// under the remote limit's name.
func TestRemoteCapsAreReported(t *testing.T) {
	quotas := parseAll(t, builder.ClusterQuota("default").RemotePerNamespace(5, ""), builder.Quota("mine", "tenant").RemoteTotal(1000, ""))
	_, gov, res, of := computeRemote(quotas, archives("tenant", "app-0", "app", 3, 1), t0)
	mine := gov.Effective(1)
	if of[1] != 1 || len(mine) != 1 || mine[0].State() != cqv1.LimitCapped || mine[0].Cap() == nil || mine[0].Cap().Limit.Written != "5" {
		t.Fatalf("mine's remote total: got %+v, want Capped by ClusterCheckpointQuota default at 5", mine)
	}
	if e := mine[0].API(); e.Limit != "remoteLimits.total.checkpoints" || e.CappedBy != "ClusterCheckpointQuota default" {
		t.Errorf("status of mine's remote total: %+v", e)
	}
	want := []LimitUsage{{Name: "remoteLimits.total.checkpoints", Per: PerNamespace, Resource: policy.ResourceCheckpoints, Hard: 1000, Used: 3, Scope: "tenant"}}
	if diff := cmp.Diff(want, res.Quotas[1].Limits); diff != "" {
		t.Errorf("mine's remote usage (-want +got):\n%s", diff)
	}
}

// BenchmarkRemote100k is the remote tier's recompute in the world of BenchmarkCompute100k,
// every archive stored: each of its quotas also sets remoteLimits of the same shape, and the
// twins are resolved and computed over the 100,000 stored archives. Beside
// BenchmarkCompute100k it says what the remote tier adds to a pass (docs/offload.md).
func BenchmarkRemote100k(b *testing.B) {
	archives, _, nsLabels := world100k(b)
	var quotas []*policy.Quota
	add := collect(b, &quotas)
	for i := range 250 {
		q := builder.Quota("default", fmt.Sprintf("ns-%d", i*4)).Total(60, "").PerPod(8, "").RemoteTotal(60, "").RemotePerPod(8, "")
		if i%4 == 0 {
			q = builder.Quota("tier", fmt.Sprintf("ns-%d", i*4)).PodSelector(map[string]string{"tier": "cache"}).PerPod(3, "300Ki").RemotePerPod(3, "300Ki")
		}
		add(policy.FromCheckpointQuota(q.Obj()))
	}
	for i := range 50 {
		add(policy.FromClusterQuota(builder.ClusterQuota(fmt.Sprintf("cluster-%d", i)).
			NamespaceSelector(map[string]string{"team": fmt.Sprint(i % 10)}).PerContainer(4, "").MaxAge("2h").
			RemotePerContainer(4, "").RemoteMaxAge("2h").Obj()))
	}
	twins, _ := Remote(quotas)
	recompute(b, archives, twins, nsLabels)
}
