package quota

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// TestClusterQuotasAreCeilings checks that a CheckpointQuota, which a namespace's own
// people write, only tightens what the cluster quotas allow: whatever it sets, pruning
// brings its archives under the cluster quota's limit too.
func TestClusterQuotasAreCeilings(t *testing.T) {
	tenant := concat(archives("tenant", "app-0", "app", 8, 1), archives("tenant", "app-1", "app", 4, 1))
	cases := map[string]struct {
		quotas []any
		// want are the archives pruned, oldest first.
		want []string
	}{
		"a namespace quota above the cluster default is capped at the default": {
			quotas: []any{builder.ClusterQuota("default").PerNamespace(5, ""), builder.Quota("mine", "tenant").Total(1000, "")},
			want:   []string{"app-0-app-0", "app-1-app-0", "app-0-app-1", "app-1-app-1", "app-0-app-2", "app-1-app-2", "app-0-app-3"},
		},
		"a namespace quota below the cluster default tightens it": {
			quotas: []any{builder.ClusterQuota("default").PerNamespace(10, ""), builder.Quota("mine", "tenant").Total(9, "")},
			want:   []string{"app-0-app-0", "app-1-app-0", "app-0-app-1"},
		},
		"a pod quota above the cluster's per-pod limit is capped": {
			quotas: []any{builder.ClusterQuota("default").PerPod(6, ""), builder.Quota("mine", "tenant").PodNames("app-0").PerPod(100, "")},
			want:   []string{"app-0-app-0", "app-0-app-1"},
		},
		"a DryRun namespace quota does not switch the cluster's ceiling off": {
			quotas: []any{builder.ClusterQuota("default").PerNamespace(10, ""),
				builder.Quota("mine", "tenant").Total(3, "").Enforcement(cqv1.EnforcementDryRun)},
			want: []string{"app-0-app-0", "app-1-app-0"},
		},
		"a DryRun namespace quota's maxAge does not switch the cluster's maxAge off": {
			quotas: []any{builder.ClusterQuota("default").MaxAge("8m30s"),
				builder.Quota("mine", "tenant").MaxAge("1m").Enforcement(cqv1.EnforcementDryRun)},
			want: []string{"app-0-app-0", "app-1-app-0"},
		},
		"a namespace quota's maxAge above the cluster's is capped": {
			quotas: []any{builder.ClusterQuota("default").MaxAge("8m30s"), builder.Quota("mine", "tenant").MaxAge("720h")},
			want:   []string{"app-0-app-0", "app-1-app-0"},
		},
		"a targeted cluster quota may grant a pod more than the cluster default": {
			quotas: []any{builder.ClusterQuota("default").PerPod(2, ""), builder.ClusterQuota("grant").PodNames("app-0").PerPod(7, ""),
				builder.Quota("mine", "tenant").PerPod(100, "")},
			want: []string{"app-0-app-0", "app-1-app-0", "app-1-app-1"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var quotas []*policy.Quota
			add := collect(t, &quotas)
			for _, q := range tc.quotas {
				switch q := q.(type) {
				case *builder.QuotaBuilder:
					add(policy.FromCheckpointQuota(q.Obj()))
				case *builder.ClusterQuotaBuilder:
					add(policy.FromClusterQuota(q.Obj()))
				}
			}
			// Ages: app-0's archives are 9 to 2 minutes old, app-1's 9 to 6; oldest first,
			// a tie of times goes to the name.
			in, _ := InputOf(quotas, tenant, Labels{}, t0.Add(9*time.Minute))
			got := prunedNames(in, Compute(in))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("pruned (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCappedLimitsReportTheirCeiling checks what a capped quota reports: its limit is in
// force, capped by the cluster quota at the cluster quota's value, and the cluster quota's
// limit is in force too.
func TestCappedLimitsReportTheirCeiling(t *testing.T) {
	var quotas []*policy.Quota
	add := collect(t, &quotas)
	add(policy.FromClusterQuota(builder.ClusterQuota("default").PerNamespace(5, "").Obj()))
	add(policy.FromCheckpointQuota(builder.Quota("mine", "tenant").Total(1000, "").Obj()))
	_, res := InputOf(quotas, archives("tenant", "app-0", "app", 3, 1), Labels{}, t0)

	mine := res.Effective(1)
	if len(mine) != 1 || mine[0].State() != cqv1.LimitCapped || mine[0].Cap() == nil || mine[0].Cap().By != quotas[0].Ref || mine[0].Cap().Limit.Written != "5" {
		t.Errorf("mine's total.checkpoints: got %+v, want Capped by %s at 5", mine, quotas[0].Ref)
	}
	if e := mine[0].API(); e.CappedBy != "ClusterCheckpointQuota default" || e.CappedAt != "5" {
		t.Errorf("status of mine's total.checkpoints: got cappedBy %q cappedAt %q, want ClusterCheckpointQuota default, 5", e.CappedBy, e.CappedAt)
	}
	def := res.Effective(0)
	if len(def) != 1 || def[0].State() != cqv1.LimitInForce {
		t.Errorf("default's perNamespace.checkpoints: got %+v, want InForce", def)
	}
}
