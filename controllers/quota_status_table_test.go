package controllers

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/resource"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

func TestUsageTable(t *testing.T) {
	q := resource.MustParse
	cases := map[string]struct {
		st     cqv1.QuotaStatus
		scopes map[string]string
		want   []string
	}{
		"no limits, no table": {},
		"widest scope first, aligned, nearest scope and policy in words": {
			st: cqv1.QuotaStatus{
				Hard: map[string]resource.Quantity{"perContainer.checkpoints": q("10"), "total.storage": q("10Gi"), "maxCheckpointSize": q("2Gi")},
				Used: map[string]resource.Quantity{"perContainer.checkpoints": q("7"), "total.storage": q("1536Mi"), "maxCheckpointSize": q("1Gi")},
				EffectivePolicy: []cqv1.EffectiveLimit{
					{Limit: "maxAge", Value: "168h", State: cqv1.LimitInForce},
					{Limit: "perContainer.checkpoints", Value: "10", State: cqv1.LimitPartlyOverridden, OverriddenBy: []string{"CheckpointQuota shop/cache"}},
					{Limit: "maxCheckpointSize", Value: "2Gi", State: cqv1.LimitInForce},
					{Limit: "perPod.storage", Value: "1Gi", State: cqv1.LimitOverridden, OverriddenBy: []string{"CheckpointQuota shop/web"}},
					{Limit: "total.storage", Value: "10Gi", State: cqv1.LimitInForce},
				},
			},
			scopes: map[string]string{"perContainer.checkpoints": "shop/cache-0/redis", "total.storage": "shop"},
			want: []string{
				"LIMIT                     USED    HARD  NEAREST             POLICY",
				"total.storage             1536Mi  10Gi  shop                in force",
				"perPod.storage            -       1Gi   -                   overridden by CheckpointQuota shop/web",
				"perContainer.checkpoints  7       10    shop/cache-0/redis  in force; where both apply, CheckpointQuota shop/cache wins",
				"maxCheckpointSize         1Gi     2Gi   -                   in force",
				"maxAge                    -       168h  -                   in force",
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, usageTable(&tc.st, tc.scopes)); diff != "" {
				t.Errorf("usage table (-want +got):\n%s", diff)
			}
		})
	}
}
