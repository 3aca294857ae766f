package webhooks

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

func TestDefaultCheckpointQuota(t *testing.T) {
	cases := map[string]struct {
		in, want *cqv1.CheckpointQuota
	}{
		"empty fields are filled": {
			in:   builder.Quota("q", "s").Total(5, "").Obj(),
			want: builder.Quota("q", "s").Total(5, "").Orphans(cqv1.OrphanRetain, "10m").Enforcement(cqv1.EnforcementEnforce).Obj(),
		},
		"user values are kept": {
			in:   builder.Quota("q", "s").Orphans(cqv1.OrphanDelete, "1h").Enforcement(cqv1.EnforcementDryRun).Obj(),
			want: builder.Quota("q", "s").Orphans(cqv1.OrphanDelete, "1h").Enforcement(cqv1.EnforcementDryRun).Obj(),
		},
		"a policy without grace period gets one": {
			in:   builder.Quota("q", "s").Orphans(cqv1.OrphanDelete, "").Obj(),
			want: builder.Quota("q", "s").Orphans(cqv1.OrphanDelete, "10m").Enforcement(cqv1.EnforcementEnforce).Obj(),
		},
		"a grace period without policy gets Retain": {
			in:   builder.Quota("q", "s").Orphans("", "5m").Obj(),
			want: builder.Quota("q", "s").Orphans(cqv1.OrphanRetain, "5m").Enforcement(cqv1.EnforcementEnforce).Obj(),
		},
		"sizes stay as written": {
			in: builder.Quota("q", "s").Total(-1, "1024Mi").PerPod(-1, "1000M").PerContainer(-1, "0Gi").MaxCheckpointSize("1.5Gi").Obj(),
			want: builder.Quota("q", "s").Total(-1, "1024Mi").PerPod(-1, "1000M").PerContainer(-1, "0Gi").MaxCheckpointSize("1.5Gi").
				Orphans(cqv1.OrphanRetain, "10m").Enforcement(cqv1.EnforcementEnforce).Obj(),
		},
		"invalid sizes are left for validation": {
			in: builder.Quota("q", "s").Total(-1, "2GB").PerPod(-1, "0.5Ki").PerContainer(-1, "10").Obj(),
			want: builder.Quota("q", "s").Total(-1, "2GB").PerPod(-1, "0.5Ki").PerContainer(-1, "10").
				Orphans(cqv1.OrphanRetain, "10m").Enforcement(cqv1.EnforcementEnforce).Obj(),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := tc.in.DeepCopy()
			DefaultCheckpointQuota(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("defaulted (-want +got):\n%s", diff)
			}
			again := got.DeepCopy()
			DefaultCheckpointQuota(again)
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("defaulting twice changed the object (-once +twice):\n%s", diff)
			}
		})
	}
}

func TestDefaultClusterCheckpointQuota(t *testing.T) {
	got := builder.ClusterQuota("c").PerNamespace(10, "2048Mi").Total(-1, "1024Gi").Obj()
	DefaultClusterCheckpointQuota(got)
	want := builder.ClusterQuota("c").PerNamespace(10, "2048Mi").Total(-1, "1024Gi").
		Orphans(cqv1.OrphanRetain, "10m").Enforcement(cqv1.EnforcementEnforce).Obj()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaulted (-want +got):\n%s", diff)
	}
}

// TestDefaultedObjectsValidate checks that whatever the defaulter makes of a valid input
// passes validation: defaulting must never produce what validation rejects.
func TestDefaultedObjectsValidate(t *testing.T) {
	quotas := map[string]*cqv1.CheckpointQuota{
		"empty":            builder.Quota("q", "s").Obj(),
		"every field":      builder.Quota("q", "s").Total(50, "10Gi").PerPod(30, "5Gi").PerContainer(10, "1Gi").MaxCheckpointSize("2Gi").MaxAge("168h").Orphans(cqv1.OrphanDelete, "1h").Enforcement(cqv1.EnforcementDryRun).Obj(),
		"mebibytes":        builder.Quota("q", "s").Total(-1, "1024Mi").Obj(),
		"half kibibyte":    builder.Quota("q", "s").PerPod(-1, "0.5Ki").Obj(),
		"decimal units":    builder.Quota("q", "s").PerPod(-1, "1500k").MaxCheckpointSize("1.5G").Obj(),
		"exponent":         builder.Quota("q", "s").PerPod(-1, "1e9").Obj(),
		"zero":             builder.Quota("q", "s").PerPod(0, "0Gi").Obj(),
		"grace only":       builder.Quota("q", "s").Orphans("", "0s").Obj(),
		"targeted":         builder.Quota("q", "s").PodNames("cache-0").ContainerNames("redis").PodSelector(map[string]string{"app": "redis"}).PerContainer(3, "3Gi").Obj(),
		"fractional units": builder.Quota("q", "s").PerContainer(-1, "2.5Mi").Obj(),
	}
	for name, q := range quotas {
		t.Run(name, func(t *testing.T) {
			if errs := ValidateCheckpointQuota(q); len(errs) > 0 {
				t.Fatalf("the input is invalid, fix the test: %v", errs)
			}
			DefaultCheckpointQuota(q)
			if errs := ValidateCheckpointQuota(q); len(errs) > 0 {
				t.Errorf("the defaulted object is invalid: %v\n%+v", errs, q.Spec)
			}
		})
	}
	clusterQuotas := map[string]*cqv1.ClusterCheckpointQuota{
		"empty":       builder.ClusterQuota("c").Obj(),
		"every level": builder.ClusterQuota("c").Total(1000, "1024Gi").PerNamespace(100, "0.5Ki").PerPod(10, "1e9").PerContainer(5, "1Gi").MaxAge("1h").Obj(),
	}
	for name, q := range clusterQuotas {
		t.Run("cluster "+name, func(t *testing.T) {
			if errs := ValidateClusterCheckpointQuota(q); len(errs) > 0 {
				t.Fatalf("the input is invalid, fix the test: %v", errs)
			}
			DefaultClusterCheckpointQuota(q)
			if errs := ValidateClusterCheckpointQuota(q); len(errs) > 0 {
				t.Errorf("the defaulted object is invalid: %v", errs)
			}
		})
	}
}
