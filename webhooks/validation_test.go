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

// fieldErr is what a test compares of a field error.
type fieldErr struct {
	Path   string
	Type   field.ErrorType
	Detail string
}

func flatten(errs field.ErrorList) []fieldErr {
	var out []fieldErr
	for _, e := range errs {
		out = append(out, fieldErr{Path: e.Field, Type: e.Type, Detail: e.Detail})
	}
	return out
}

func TestParseSize(t *testing.T) {
	cases := map[string]struct {
		in   cqv1.Size
		want string // detail, empty when valid
	}{
		"10Gi":               {in: "10Gi"},
		"zero without unit":  {in: "0"},
		"decimal unit":       {in: "2G"},
		"exponent":           {in: "1e9"},
		"2GB":                {in: "2GB", want: fmt.Sprintf(MsgSizeDidYouMean, "2Gi")},
		"500mb":              {in: "500mb", want: fmt.Sprintf(MsgSizeDidYouMean, "500Mi")},
		"1.5.Gi":             {in: "1.5.Gi", want: MsgSizeMalformed},
		"ten":                {in: "ten", want: MsgSizeMalformed},
		"empty":              {in: "", want: MsgSizeEmpty},
		"500m":               {in: "500m", want: fmt.Sprintf(MsgSizeFraction, "500Mi")},
		"half a byte":        {in: "0.5", want: MsgSizeNotWhole},
		"negative":           {in: "-1Gi", want: MsgSizeNegative},
		"bare number":        {in: "10", want: fmt.Sprintf(MsgSizeBareNumber, "10Mi", "10")},
		"too large":          {in: "9Ei", want: MsgSizeTooLarge},
		"fraction of a unit": {in: "1.5Gi"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseSize(tc.in, field.NewPath("spec", "maxCheckpointSize"))
			got := ""
			if err != nil {
				got = err.Detail
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("detail (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateCheckpointQuota(t *testing.T) {
	empty := []string{}
	cases := map[string]struct {
		in   *cqv1.CheckpointQuota
		want []fieldErr
	}{
		"valid": {
			in: builder.Quota("q", "s").Total(50, "10Gi").PerPod(30, "5Gi").PerContainer(10, "1Gi").
				MaxCheckpointSize("2Gi").MaxAge("168h").Orphans(cqv1.OrphanDelete, "10m").Enforcement(cqv1.EnforcementDryRun).Obj(),
		},
		"negative count": {
			in: func() *cqv1.CheckpointQuota {
				q := builder.Quota("q", "s").PerPod(0, "").Obj()
				*q.Spec.Limits.PerPod.Checkpoints = -1 // the builder reads -1 as "leave it out"
				return q
			}(),
			want: []fieldErr{{"spec.limits.perPod.checkpoints", field.ErrorTypeInvalid, MsgCountNegative}},
		},
		"bad sizes at every level": {
			in: builder.Quota("q", "s").Total(-1, "2GB").PerPod(-1, "500m").PerContainer(-1, "10").Obj(),
			want: []fieldErr{
				{"spec.limits.total.storage", field.ErrorTypeInvalid, fmt.Sprintf(MsgSizeDidYouMean, "2Gi")},
				{"spec.limits.perPod.storage", field.ErrorTypeInvalid, fmt.Sprintf(MsgSizeFraction, "500Mi")},
				{"spec.limits.perContainer.storage", field.ErrorTypeInvalid, fmt.Sprintf(MsgSizeBareNumber, "10Mi", "10")},
			},
		},
		"7d": {
			in:   builder.Quota("q", "s").MaxAge("7d").Obj(),
			want: []fieldErr{{"spec.maxAge", field.ErrorTypeInvalid, fmt.Sprintf(MsgDurationDays, "168h")}},
		},
		"2w": {
			in:   builder.Quota("q", "s").MaxAge("2w").Obj(),
			want: []fieldErr{{"spec.maxAge", field.ErrorTypeInvalid, fmt.Sprintf(MsgDurationDays, "336h")}},
		},
		"-1h": {
			in:   builder.Quota("q", "s").MaxAge("-1h").Obj(),
			want: []fieldErr{{"spec.maxAge", field.ErrorTypeInvalid, MsgMaxAgeNotPos}},
		},
		"0s": {
			in:   builder.Quota("q", "s").MaxAge("0s").Obj(),
			want: []fieldErr{{"spec.maxAge", field.ErrorTypeInvalid, MsgMaxAgeNotPos}},
		},
		"soon": {
			in:   builder.Quota("q", "s").MaxAge("soon").Obj(),
			want: []fieldErr{{"spec.maxAge", field.ErrorTypeInvalid, MsgDurationBad}},
		},
		"negative grace": {
			in:   builder.Quota("q", "s").Orphans(cqv1.OrphanDelete, "-5m").Obj(),
			want: []fieldErr{{"spec.orphans.gracePeriod", field.ErrorTypeInvalid, MsgGraceNegative}},
		},
		"unknown enums": {
			in: builder.Quota("q", "s").Orphans("Keep", "").Enforcement("Audit").Obj(),
			want: []fieldErr{
				{"spec.orphans.policy", field.ErrorTypeNotSupported, `supported values: "Retain", "Delete"`},
				{"spec.enforcement", field.ErrorTypeNotSupported, `supported values: "Enforce", "DryRun"`},
			},
		},
		"empty target lists": {
			in: func() *cqv1.CheckpointQuota {
				q := builder.Quota("q", "s").Obj()
				q.Spec.Target = &cqv1.QuotaTarget{PodNames: empty, ContainerNames: empty}
				return q
			}(),
			want: []fieldErr{
				{"spec.target.podNames", field.ErrorTypeInvalid, MsgEmptyPodList},
				{"spec.target.containerNames", field.ErrorTypeInvalid, MsgEmptyContainers},
			},
		},
		"bad names": {
			in: builder.Quota("q", "s").PodNames("cache-0", "Cache_1").ContainerNames("redis.sidecar").Obj(),
			want: []fieldErr{
				{"spec.target.podNames[1]", field.ErrorTypeInvalid, MsgBadPodName},
				{"spec.target.containerNames[0]", field.ErrorTypeInvalid, MsgBadContainerName},
			},
		},
		"bad selector": {
			in: func() *cqv1.CheckpointQuota {
				q := builder.Quota("q", "s").Obj()
				q.Spec.Target = &cqv1.QuotaTarget{PodSelector: &cqv1.LabelSelector{MatchExpressions: []cqv1.LabelSelectorRequirement{{Key: "app", Operator: "In"}}}}
				return q
			}(),
			want: []fieldErr{{"spec.target.podSelector.matchExpressions[0].values", field.ErrorTypeRequired, "must be specified when `operator` is 'In' or 'NotIn'"}},
		},
		"storage 0 with a positive count": {
			in: builder.Quota("q", "s").PerPod(5, "0").Obj(),
			want: []fieldErr{
				{"spec.limits.perPod.storage", field.ErrorTypeInvalid, fmt.Sprintf(MsgStorageZeroCount, "0", "checkpoints", 5)},
				{"spec.limits.perPod.checkpoints", field.ErrorTypeInvalid, fmt.Sprintf(MsgCountStorageZero, "storage")},
			},
		},
		"maxCheckpointSize 0 with a positive count": {
			in: builder.Quota("q", "s").Total(5, "").MaxCheckpointSize("0").Obj(),
			want: []fieldErr{
				{"spec.maxCheckpointSize", field.ErrorTypeInvalid, fmt.Sprintf(MsgMaxSizeZero, "spec.limits.total.checkpoints", 5)},
				{"spec.limits.total.checkpoints", field.ErrorTypeInvalid, MsgCountMaxSizeZero},
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, flatten(ValidateCheckpointQuota(tc.in))); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateCount(t *testing.T) {
	n := int64(-3)
	want := []fieldErr{{"spec.limits.perPod.checkpoints", field.ErrorTypeInvalid, MsgCountNegative}}
	if diff := cmp.Diff(want, flatten(ValidateCount(&n, field.NewPath("spec", "limits", "perPod", "checkpoints")))); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestValidateClusterCheckpointQuota(t *testing.T) {
	cases := map[string]struct {
		in   *cqv1.ClusterCheckpointQuota
		want []fieldErr
	}{
		"valid": {in: builder.ClusterQuota("c").PerNamespace(100, "50Gi").Total(1000, "1Ti").NamespaceSelector(map[string]string{"team": "a"}).Obj()},
		"bad namespace selector and sizes": {
			in: func() *cqv1.ClusterCheckpointQuota {
				q := builder.ClusterQuota("c").PerNamespace(-1, "1.5.Gi").MaxCheckpointSize("ten").Obj()
				q.Spec.NamespaceSelector = &cqv1.LabelSelector{MatchExpressions: []cqv1.LabelSelectorRequirement{{Key: "team", Operator: "Is"}}}
				return q
			}(),
			want: []fieldErr{
				{"spec.namespaceSelector.matchExpressions[0].operator", field.ErrorTypeInvalid, `not a valid selector operator: use In, NotIn, Exists or DoesNotExist`},
				{"spec.limits.perNamespace.storage", field.ErrorTypeInvalid, MsgSizeMalformed},
				{"spec.maxCheckpointSize", field.ErrorTypeInvalid, MsgSizeMalformed},
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, flatten(ValidateClusterCheckpointQuota(tc.in))); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPackedTargetRefused checks that what the manager's cache keeps of a target in place
// of its names and selector (policy.ShareTarget: packed lists, which parse as the policy
// they came from) is refused when a tenant writes it: nothing written reads as packed
// without failing admission first.
func TestPackedTargetRefused(t *testing.T) {
	q := builder.Quota("q", "s").PerPod(3, "").PodNames("web-0").ContainerNames("app").Obj()
	q.Spec.Target.PodSelector = &cqv1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	p, err := policy.FromCheckpointQuota(q)
	if err != nil {
		t.Fatal(err)
	}
	policy.ShareTarget(q.Spec.Target, p)
	got := map[string]bool{}
	for _, e := range ValidateCheckpointQuota(q) {
		got[e.Field] = true
	}
	for _, path := range []string{"spec.target.podNames[0]", "spec.target.containerNames[0]", "spec.target.podSelector.matchExpressions[0].key"} {
		if !got[path] {
			t.Errorf("a packed %s is not refused; errors on %v", path, got)
		}
	}
}
