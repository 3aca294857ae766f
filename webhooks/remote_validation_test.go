package webhooks

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation/field"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

func TestValidateRemoteLimits(t *testing.T) {
	negative := func(b *builder.QuotaBuilder) *cqv1.CheckpointQuota {
		q := b.RemotePerPod(0, "").Obj()
		*q.Spec.RemoteLimits.PerPod.Checkpoints = -1 // the builder reads -1 as "leave it out"
		return q
	}
	cases := map[string]struct {
		in   any
		want []fieldErr
	}{
		"valid namespaced": {in: builder.Quota("q", "s").RemoteTotal(50, "10Gi").RemotePerPod(30, "5Gi").RemotePerContainer(10, "1Gi").RemoteMaxAge("720h").Obj()},
		"valid cluster": {in: builder.ClusterQuota("c").RemoteTotal(500, "1Ti").RemotePerNamespace(50, "10Gi").RemotePerPod(30, "5Gi").
			RemotePerContainer(10, "1Gi").RemoteMaxAge("720h").Obj()},
		"a size in the original operator's units": {in: builder.Quota("q", "s").RemotePerPod(-1, "2GB").Obj(),
			want: []fieldErr{{"spec.remoteLimits.perPod.storage", field.ErrorTypeInvalid, fmt.Sprintf(MsgSizeDidYouMean, "2Gi")}}},
		"a bare number": {in: builder.ClusterQuota("c").RemotePerNamespace(-1, "10").Obj(),
			want: []fieldErr{{"spec.remoteLimits.perNamespace.storage", field.ErrorTypeInvalid, fmt.Sprintf(MsgSizeBareNumber, "10Mi", "10")}}},
		"a negative count": {in: negative(builder.Quota("q", "s")),
			want: []fieldErr{{"spec.remoteLimits.perPod.checkpoints", field.ErrorTypeInvalid, MsgCountNegative}}},
		"maxAge in days": {in: builder.Quota("q", "s").RemoteMaxAge("30d").Obj(),
			want: []fieldErr{{"spec.remoteLimits.maxAge", field.ErrorTypeInvalid, fmt.Sprintf(MsgDurationDays, "720h")}}},
		"maxAge zero": {in: builder.ClusterQuota("c").RemoteMaxAge("0s").Obj(),
			want: []fieldErr{{"spec.remoteLimits.maxAge", field.ErrorTypeInvalid, MsgMaxAgeNotPos}}},
		"storage 0 with a positive count, on both fields": {in: builder.Quota("q", "s").RemoteTotal(5, "0").Obj(),
			want: []fieldErr{
				{"spec.remoteLimits.total.storage", field.ErrorTypeInvalid, fmt.Sprintf(MsgStorageZeroCount, "0", "checkpoints", 5)},
				{"spec.remoteLimits.total.checkpoints", field.ErrorTypeInvalid, fmt.Sprintf(MsgCountStorageZero, "storage")},
			}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var errs field.ErrorList
			switch q := tc.in.(type) {
			case *cqv1.CheckpointQuota:
				errs = ValidateCheckpointQuota(q)
			case *cqv1.ClusterCheckpointQuota:
				errs = ValidateClusterCheckpointQuota(q)
			}
			if diff := cmp.Diff(tc.want, flatten(errs)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRemoteWarnings(t *testing.T) {
	parse := func(q *cqv1.CheckpointQuota) *policy.Quota {
		p, err := policy.FromCheckpointQuota(q)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	cluster, err := policy.FromClusterQuota(builder.ClusterQuota("default").RemotePerNamespace(5, "1Gi").Obj())
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		in   *cqv1.CheckpointQuota
		want []string
	}{
		"above the cluster's remote ceiling: capped, naming it": {
			in: builder.Quota("mine", "shop").RemoteTotal(100, "500Mi").Obj(),
			want: []string{
				"spec.remoteLimits.total.checkpoints: capped by ClusterCheckpointQuota default at 5, the cluster's ceiling",
				"spec: in force: remoteLimits.total.storage=500Mi",
			},
		},
		"a narrower level above a wider one, and 0": {
			in: builder.Quota("mine", "shop").RemoteTotal(3, "").RemotePerPod(0, "").RemotePerContainer(4, "").Obj(),
			want: []string{
				"spec.remoteLimits.perPod.checkpoints: 0 prunes every unpinned archive",
				"spec.remoteLimits.perContainer.checkpoints: 4 is above spec.remoteLimits.total.checkpoints 3, so it never binds",
				"spec.remoteLimits.perContainer.checkpoints: 4 is above spec.remoteLimits.perPod.checkpoints 0, so it never binds",
				// Below the cluster's 5, nothing is capped; the line is cut at 120 characters.
				"spec: in force: remoteLimits.total.checkpoints=3, remoteLimits.perPod.checkpoints=0, remoteLimits.perContainer.checkp...",
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			errs, reports := remoteConflicts(parse(tc.in), []*policy.Quota{cluster}, nil)
			if len(errs) > 0 {
				t.Fatalf("conflicts: %v", errs)
			}
			got := append(remoteWarnings(policy.CheckpointQuotaRemoteLevels(tc.in)), EffectiveWarnings(reports)...)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}
