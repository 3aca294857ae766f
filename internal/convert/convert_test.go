package convert

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
	"github.com/checkpoint-quota/checkpoint-quota/webhooks"
)

func TestConvert(t *testing.T) {
	cases := map[string]struct {
		file         string
		opts         Options
		cluster      *cqv1.ClusterCheckpointQuota
		namespaced   []*cqv1.CheckpointQuota
		warningPaths []string
	}{
		"counts only": {
			file:         "counts-only.yaml",
			cluster:      builder.ClusterQuota("retention").PerNamespace(40, "").PerPod(20, "").PerContainer(8, "").Enforcement(cqv1.EnforcementEnforce).Obj(),
			warningPaths: []string{"spec.applyPoliciesImmediately"},
		},
		"bare sizes as the docs say (Mi)": {
			file: "sizes.yaml",
			cluster: builder.ClusterQuota("sizes").PerNamespace(-1, "800Mi").PerPod(-1, "400Mi").PerContainer(-1, "80Mi").
				MaxCheckpointSize("6Mi").Enforcement(cqv1.EnforcementEnforce).Obj(),
			warningPaths: []string{"spec.globalPolicy.maxTotalSizePerNamespace", "spec.globalPolicy.maxTotalSizePerPod",
				"spec.globalPolicy.maxTotalSizePerContainer", "spec.globalPolicy.maxCheckpointSize"},
		},
		"bare sizes as the old operator did (bytes), DryRun": {
			file: "sizes.yaml",
			opts: Options{SizeUnit: Bytes, Enforcement: cqv1.EnforcementDryRun},
			cluster: builder.ClusterQuota("sizes").PerNamespace(-1, "1Ki").PerPod(-1, "1Ki").PerContainer(-1, "1Ki").
				MaxCheckpointSize("1Ki").Enforcement(cqv1.EnforcementDryRun).Obj(),
			warningPaths: []string{"spec.globalPolicy.maxTotalSizePerNamespace", "spec.globalPolicy.maxTotalSizePerPod",
				"spec.globalPolicy.maxTotalSizePerContainer", "spec.globalPolicy.maxCheckpointSize"},
		},
		"a policy of each scope": {
			file: "scoped.yaml",
			namespaced: []*cqv1.CheckpointQuota{
				builder.Quota("scoped", "batch").Total(25, "").Enforcement(cqv1.EnforcementEnforce).Obj(),
				builder.Quota("scoped-container-cache-0-redis", "shop").PodNames("cache-0").ContainerNames("redis").
					PerContainer(4, "16Mi").MaxCheckpointSize("5Mi").Orphans(cqv1.OrphanDelete, "").Enforcement(cqv1.EnforcementEnforce).Obj(),
				builder.Quota("scoped-pod-web-1", "shop").PodNames("web-1").PerPod(12, "40Mi").Enforcement(cqv1.EnforcementEnforce).Obj(),
			},
			warningPaths: []string{"spec.checkpointDirectory", "spec.namespacePolicies[1].namespace",
				"spec.podPolicies[0].maxTotalSize", "spec.containerPolicies[0].maxTotalSize",
				"spec.containerPolicies[0].maxCheckpointSize", "spec.containerPolicies[0].retainOrphan"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			res, err := Convert(data, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(typed(tc.cluster), res.Cluster); diff != "" {
				t.Errorf("cluster quota (-want +got):\n%s", diff)
			}
			var want []*cqv1.CheckpointQuota
			for _, q := range tc.namespaced {
				want = append(want, typedQuota(q))
			}
			if diff := cmp.Diff(want, res.Namespaced); diff != "" {
				t.Errorf("quotas (-want +got):\n%s", diff)
			}
			var paths []string
			for _, w := range res.Warnings {
				paths = append(paths, w.Path)
			}
			if diff := cmp.Diff(sorted(tc.warningPaths), sorted(paths)); diff != "" {
				t.Errorf("warnings (-want +got):\n%s\nall: %v", diff, res.Warnings)
			}
			// What convert writes passes the webhook's validation.
			if res.Cluster != nil {
				q := res.Cluster.DeepCopy()
				webhooks.DefaultClusterCheckpointQuota(q)
				if errs := webhooks.ValidateClusterCheckpointQuota(q); len(errs) > 0 {
					t.Errorf("the cluster quota does not validate: %v", errs)
				}
			}
			for _, q := range res.Namespaced {
				q := q.DeepCopy()
				webhooks.DefaultCheckpointQuota(q)
				if errs := webhooks.ValidateCheckpointQuota(q); len(errs) > 0 {
					t.Errorf("quota %s does not validate: %v", q.Name, errs)
				}
			}
		})
	}
}

// The old operator's size bug is named: its sample's 10 is not 10 bytes here.
func TestConvertWarnsOfBareSizes(t *testing.T) {
	res, err := Convert([]byte("apiVersion: criu.org/v1\nkind: CheckpointRestoreOperator\nmetadata: {name: x}\nspec: {applyPoliciesImmediately: true, globalPolicy: {maxCheckpointSize: 10}}\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Warning{{"spec.globalPolicy.maxCheckpointSize", "10 became 10Mi (the old operator's docs said MB, its code compared bytes); --size-unit=Mi|M|bytes chooses how bare sizes are read"}}
	if diff := cmp.Diff(want, res.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestConvertRejectsOtherKinds(t *testing.T) {
	if _, err := Convert([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"), Options{}); err == nil {
		t.Error("a ConfigMap converted")
	}
}

func typed(q *cqv1.ClusterCheckpointQuota) *cqv1.ClusterCheckpointQuota {
	if q == nil {
		return nil
	}
	q.APIVersion, q.Kind = cqv1.GroupVersion.String(), "ClusterCheckpointQuota"
	return q
}

func typedQuota(q *cqv1.CheckpointQuota) *cqv1.CheckpointQuota {
	q.APIVersion, q.Kind = cqv1.GroupVersion.String(), "CheckpointQuota"
	return q
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}
