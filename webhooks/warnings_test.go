package webhooks

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation/field"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

func quotaWarnings(q *cqv1.CheckpointQuota) []string {
	return SuspiciousWarnings(policy.CheckpointQuotaLevels(q), &q.Spec.RetentionSpec, q.Spec.Target, field.NewPath("spec"))
}

func TestSuspiciousWarnings(t *testing.T) {
	cases := map[string]struct {
		in   *cqv1.CheckpointQuota
		want []string
	}{
		"nothing odd": {in: builder.Quota("q", "s").Total(50, "10Gi").PerPod(30, "5Gi").PerContainer(10, "1Gi").MaxCheckpointSize("1Gi").Obj()},
		"per container above per pod": {
			in: builder.Quota("q", "s").PerPod(5, "1Gi").PerContainer(10, "2Gi").Obj(),
			want: []string{
				"spec.limits.perContainer.checkpoints: 10 is above spec.limits.perPod.checkpoints 5, so it never binds",
				"spec.limits.perContainer.storage: 2Gi is above spec.limits.perPod.storage 1Gi, so it never binds",
			},
		},
		"maxCheckpointSize above total": {
			in:   builder.Quota("q", "s").Total(-1, "1Gi").MaxCheckpointSize("2Gi").Obj(),
			want: []string{"spec.maxCheckpointSize: 2Gi is above spec.limits.total.storage 1Gi, so such an archive is always pruned"},
		},
		"zero limits": {
			in: builder.Quota("q", "s").PerPod(0, "").PerContainer(-1, "0").Obj(),
			want: []string{
				"spec.limits.perPod.checkpoints: " + WarnZeroCount,
				"spec.limits.perContainer.storage: " + WarnZeroStorage,
			},
		},
		"empty selector": {
			in: func() *cqv1.CheckpointQuota {
				q := builder.Quota("q", "s").Obj()
				q.Spec.Target = &cqv1.QuotaTarget{PodSelector: &cqv1.LabelSelector{}}
				return q
			}(),
			want: []string{"spec.target.podSelector: " + WarnEmptySelector},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := quotaWarnings(tc.in)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			for _, w := range got {
				if len(w) > maxWarning {
					t.Errorf("warning longer than %d: %q", maxWarning, w)
				}
			}
		})
	}
}

func TestEffectiveWarnings(t *testing.T) {
	ns := policy.Ref{Kind: policy.KindQuota, Namespace: "shop", Name: "ns"}
	cluster := policy.Ref{Kind: policy.KindClusterQuota, Name: "default"}
	long := policy.Ref{Kind: policy.KindQuota, Namespace: "shop", Name: strings.Repeat("x", 100)}
	limit := func(name, written string, path ...string) *policy.Limit {
		return &policy.Limit{Field: &policy.Field{Name: name, Path: field.NewPath("spec", path...)}, Written: written}
	}
	cases := map[string]struct {
		in   []policy.LimitReport
		want []string
	}{
		"in force": {
			in:   []policy.LimitReport{policy.NewLimitReport(limit("total.checkpoints", "5", "limits", "total", "checkpoints"), cqv1.LimitInForce, nil, []policy.Ref{cluster}, nil)},
			want: []string{"spec.limits.total.checkpoints: overrides ClusterCheckpointQuota default where both apply", "spec: in force: total.checkpoints=5"},
		},
		"partly overridden": {
			in: []policy.LimitReport{
				policy.NewLimitReport(limit("perNamespace.checkpoints", "50", "limits", "perNamespace", "checkpoints"), cqv1.LimitPartlyOverridden, []policy.Ref{ns}, nil, nil),
				policy.NewLimitReport(limit("maxAge", "1h", "maxAge"), cqv1.LimitOverridden, []policy.Ref{ns, cluster, ns}, nil, nil),
			},
			want: []string{
				"spec.limits.perNamespace.checkpoints: overridden by CheckpointQuota shop/ns where it also applies",
				"spec.maxAge: overridden by CheckpointQuota shop/ns, ClusterCheckpointQuota default, 1 more",
			},
		},
		"long names are cut": {
			in:   []policy.LimitReport{policy.NewLimitReport(limit("maxAge", "1h", "maxAge"), cqv1.LimitOverridden, []policy.Ref{long}, nil, nil)},
			want: []string{"spec.maxAge: overridden by CheckpointQuota shop/" + strings.Repeat("x", 117-len("spec.maxAge: overridden by CheckpointQuota shop/")) + "..."},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, EffectiveWarnings(tc.in)); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}
