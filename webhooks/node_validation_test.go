package webhooks

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation/field"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

func TestValidateNodeRules(t *testing.T) {
	floor := "spec.nodeFilesystem.minFree"
	cases := map[string]struct {
		q    *cqv1.ClusterCheckpointQuota
		want []fieldErr
	}{
		"quantity":       {q: builder.ClusterQuota("q").MinFree("50Gi").Obj()},
		"percentage":     {q: builder.ClusterQuota("q").MinFree("15%").Obj()},
		"zero":           {q: builder.ClusterQuota("q").MinFree("0").Obj()},
		"over 100%":      {q: builder.ClusterQuota("q").MinFree("101%").Obj(), want: []fieldErr{{floor, field.ErrorTypeInvalid, MsgMinFreeOver100}}},
		"negative %":     {q: builder.ClusterQuota("q").MinFree("-5%").Obj(), want: []fieldErr{{floor, field.ErrorTypeInvalid, MsgMinFreePercent}}},
		"bare number":    {q: builder.ClusterQuota("q").MinFree("50").Obj(), want: []fieldErr{{floor, field.ErrorTypeInvalid, MsgMinFreeBare}}},
		"malformed unit": {q: builder.ClusterQuota("q").MinFree("5gb").Obj(), want: []fieldErr{{floor, field.ErrorTypeInvalid, fmt.Sprintf(MsgSizeDidYouMean, "5Gi")}}},
		"per-node storage 0 with a count": {q: builder.ClusterQuota("q").PerNode(3, "0").Obj(), want: []fieldErr{
			{"spec.limits.perNode.storage", field.ErrorTypeInvalid, fmt.Sprintf(MsgStorageZeroCount, "0", "checkpoints", 3)},
			{"spec.limits.perNode.checkpoints", field.ErrorTypeInvalid, fmt.Sprintf(MsgCountStorageZero, "storage")},
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, flatten(ValidateClusterCheckpointQuota(tc.q))); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNodeWarnings(t *testing.T) {
	stricter := *builder.ClusterQuota("small").PerNode(5, "1Gi").Obj()
	cases := map[string]struct {
		q      *cqv1.ClusterCheckpointQuota
		others []cqv1.ClusterCheckpointQuota
		want   []string
	}{
		"nothing odd": {q: builder.ClusterQuota("q").PerNode(10, "10Gi").Total(100, "100Gi").Obj()},
		"above the total": {q: builder.ClusterQuota("q").PerNode(20, "20Gi").Total(10, "10Gi").Obj(), want: []string{
			"spec.limits.perNode.checkpoints: 20 is above spec.limits.total.checkpoints 10: lower it to at most the total",
			"spec.limits.perNode.storage: 20Gi is above spec.limits.total.storage 10Gi: lower it to at most the total",
		}},
		"a stricter quota wins": {q: builder.ClusterQuota("q").PerNode(10, "10Gi").Obj(), others: []cqv1.ClusterCheckpointQuota{stricter}, want: []string{
			"spec.limits.perNode.checkpoints: ClusterCheckpointQuota small sets 5, which wins: the smallest holds",
			"spec.limits.perNode.storage: ClusterCheckpointQuota small sets 1Gi, which wins: the smallest holds",
		}},
		"floor of everything": {q: builder.ClusterQuota("q").MinFree("100%").Obj(), want: []string{
			"spec.nodeFilesystem.minFree: 100% asks for an empty filesystem: every unpinned archive on every node is pruned",
		}},
		"floor of nothing": {q: builder.ClusterQuota("q").MinFree("0%").Obj(), want: []string{
			"spec.nodeFilesystem.minFree: 0% keeps no free space, as if left out",
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, NodeWarnings(tc.q, tc.others, field.NewPath("spec"))); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}
