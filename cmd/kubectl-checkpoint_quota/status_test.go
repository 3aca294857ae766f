package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

func TestPrintQuota(t *testing.T) {
	cond := func(typ string, status metav1.ConditionStatus, reason, message string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: message}
	}
	cases := map[string]struct {
		st   cqv1.QuotaStatus
		want []string
	}{
		"no status yet": {
			want: []string{"CheckpointQuota shop/q (Enforce)", "  no limits reported yet (is the manager running?)"},
		},
		"the usage table, the scopes nearest their limits and what needs attention": {
			st: cqv1.QuotaStatus{
				UsageTable: []string{"LIMIT               USED  HARD", "perPod.checkpoints  3     2"},
				Pods:       []cqv1.PodUsage{{Namespace: "shop", Pod: "web-0", Usage: cqv1.Usage{Checkpoints: 3}}},
				Conditions: []metav1.Condition{
					cond(cqv1.ConditionReady, metav1.ConditionTrue, cqv1.ReasonUsageComputed, "computed"),
					cond(cqv1.ConditionOverQuota, metav1.ConditionTrue, cqv1.ReasonPinnedCheckpoints, "pins keep perPod.checkpoints at 3/2"),
					cond(cqv1.ConditionConflict, metav1.ConditionFalse, cqv1.ReasonNoConflict, "no conflict"),
				},
			},
			want: []string{"CheckpointQuota shop/q (Enforce)",
				"  LIMIT               USED  HARD", "  perPod.checkpoints  3     2",
				"  nearest their limits: shop/web-0 3 (0)",
				"  OverQuota: pins keep perPod.checkpoints at 3/2"},
		},
		"remoteLimits: the stored usage beside the node usage": {
			st: cqv1.QuotaStatus{
				UsageTable: []string{"LIMIT                            USED  HARD", "total.checkpoints                2     5",
					"remoteLimits.total.checkpoints   3     3"},
				Summary: cqv1.UsageSummary{Checkpoints: "2/5", Storage: "2Mi", Remote: "3/3, 3Mi"},
			},
			want: []string{"CheckpointQuota shop/q (Enforce)",
				"  LIMIT                            USED  HARD", "  total.checkpoints                2     5",
				"  remoteLimits.total.checkpoints   3     3",
				"  on nodes: 2/5, 2Mi; in CheckpointStores: 3/3, 3Mi"},
		},
		"a spec that does not parse: why, and nothing else": {
			st: cqv1.QuotaStatus{Conditions: []metav1.Condition{
				cond(cqv1.ConditionReady, metav1.ConditionFalse, cqv1.ReasonInvalidSpec, "spec.maxAge: bad; fix the field"),
				cond(cqv1.ConditionOverQuota, metav1.ConditionUnknown, cqv1.ReasonInvalidSpec, "not computed"),
				cond(cqv1.ConditionConflict, metav1.ConditionUnknown, cqv1.ReasonInvalidSpec, "not computed"),
			}},
			want: []string{"CheckpointQuota shop/q (Enforce)", "  not ready: spec.maxAge: bad; fix the field"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var out strings.Builder
			w := &writer{w: &out}
			printQuota(w, "CheckpointQuota shop/q", cqv1.EnforcementEnforce, &tc.st)
			if w.err != nil {
				t.Fatal(w.err)
			}
			got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}
