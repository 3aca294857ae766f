package webhooks

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation/field"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

func TestValidateOffload(t *testing.T) {
	after := func(d string) *cqv1.Duration { v := cqv1.Duration(d); return &v }
	cases := map[string]struct {
		in   *cqv1.OffloadSpec
		want []fieldErr
	}{
		"absent":          {},
		"store":           {in: &cqv1.OffloadSpec{Store: "archive"}},
		"store and after": {in: &cqv1.OffloadSpec{Store: "archive", After: after("1h")}},
		"store with a path": {in: &cqv1.OffloadSpec{Store: "bucket/prefix"},
			want: []fieldErr{{"spec.offload.store", field.ErrorTypeInvalid, MsgStoreName}}},
		"upper-case store": {in: &cqv1.OffloadSpec{Store: "Archive"},
			want: []fieldErr{{"spec.offload.store", field.ErrorTypeInvalid, MsgStoreName}}},
		"after in days": {in: &cqv1.OffloadSpec{Store: "archive", After: after("2d")},
			want: []fieldErr{{"spec.offload.after", field.ErrorTypeInvalid, fmt.Sprintf(MsgDurationDays, "48h")}}},
		"after zero": {in: &cqv1.OffloadSpec{Store: "archive", After: after("0s")},
			want: []fieldErr{{"spec.offload.after", field.ErrorTypeInvalid, MsgOffloadAfterPos}}},
		"after not a duration": {in: &cqv1.OffloadSpec{Store: "archive", After: after("soon")},
			want: []fieldErr{{"spec.offload.after", field.ErrorTypeInvalid, MsgDurationBad}}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := flatten(ValidateOffload(tc.in, field.NewPath("spec", "offload")))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStoreAdmits(t *testing.T) {
	store := func(sel *cqv1.LabelSelector) *cqv1.CheckpointStore {
		return &cqv1.CheckpointStore{Spec: cqv1.CheckpointStoreSpec{NamespaceSelector: sel}}
	}
	shop := map[string]string{"kubernetes.io/metadata.name": "shop", "tier": "gold"}
	cases := map[string]struct {
		store *cqv1.CheckpointStore
		want  bool
	}{
		"no selector: cluster quotas only": {store: store(nil), want: false},
		"selects the namespace":            {store: store(&cqv1.LabelSelector{MatchLabels: map[string]string{"tier": "gold"}}), want: true},
		"selects others":                   {store: store(&cqv1.LabelSelector{MatchLabels: map[string]string{"tier": "silver"}}), want: false},
		"empty selector: every namespace":  {store: store(&cqv1.LabelSelector{}), want: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := tc.store.Admits(shop); got != tc.want {
				t.Errorf("Admits = %v; want %v", got, tc.want)
			}
		})
	}
}
