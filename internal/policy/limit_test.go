package policy

import (
	"time"

	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// pathsEqual compares field paths by what they print: field.Path has unexported fields.
var pathsEqual = cmp.Comparer(func(a, b *field.Path) bool { return a.String() == b.String() })

// levelRow is what TestLevels compares of a level.
type levelRow struct {
	Name, Path, CountPath, StoragePath string
	Limits                             *cqv1.ResourceLimits
	Checkpoints, Storage               Key
}

func rows(levels ...Level) []levelRow {
	var out []levelRow
	for _, lv := range levels {
		out = append(out, levelRow{Name: lv.Name, Path: lv.Path.String(), CountPath: lv.CountPath().String(),
			StoragePath: lv.StoragePath().String(), Limits: lv.Limits, Checkpoints: lv.Checkpoints, Storage: lv.Storage})
	}
	return out
}

func TestLevels(t *testing.T) {
	five := builder.Limits(5, "1Gi")
	row := func(name string, l *cqv1.ResourceLimits, count, storage Key) levelRow {
		p := "spec.limits." + name
		return levelRow{Name: name, Path: p, CountPath: p + ".checkpoints", StoragePath: p + ".storage", Limits: l, Checkpoints: count, Storage: storage}
	}
	perPod := row("perPod", nil, PodCheckpoints, PodStorage)
	perContainer := row("perContainer", nil, ContainerCheckpoints, ContainerStorage)
	cases := map[string]struct {
		got  []Level
		want []levelRow
	}{
		"namespace quota without a target: total is the namespace level": {
			got:  CheckpointQuotaLevels(builder.Quota("q", "shop").Total(5, "1Gi").Obj()),
			want: []levelRow{row("total", five, NamespaceCheckpoints, NamespaceStorage), perPod, perContainer},
		},
		"an empty pod selector is no target": {
			got:  CheckpointQuotaLevels(builder.Quota("q", "shop").PodSelector(map[string]string{}).Obj()),
			want: []levelRow{row("total", nil, NamespaceCheckpoints, NamespaceStorage), perPod, perContainer},
		},
		"a pod selector makes total a group limit": {
			got:  CheckpointQuotaLevels(builder.Quota("q", "shop").PodSelector(map[string]string{"app": "redis"}).Obj()),
			want: []levelRow{row("total", nil, GroupCheckpoints, GroupStorage), perPod, perContainer},
		},
		"container names make total a group limit": {
			got: CheckpointQuotaLevels(builder.Quota("q", "shop").ContainerNames("redis").PerContainer(5, "1Gi").Obj()),
			want: []levelRow{row("total", nil, GroupCheckpoints, GroupStorage), perPod,
				row("perContainer", five, ContainerCheckpoints, ContainerStorage)},
		},
		"cluster quota: total is always a group limit": {
			got: ClusterQuotaLevels(builder.ClusterQuota("c").PerNamespace(5, "1Gi").Obj()),
			want: []levelRow{row("total", nil, GroupCheckpoints, GroupStorage), row("perNamespace", five, NamespaceCheckpoints, NamespaceStorage),
				perPod, perContainer},
		},
		"perNode has no key": {
			got:  []Level{NodeLevel(builder.ClusterQuota("c").PerNode(5, "1Gi").Obj())},
			want: []levelRow{row("perNode", five, "", "")},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, rows(tc.got...)); diff != "" {
				t.Errorf("levels (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	path := func(p ...string) *field.Path { return field.NewPath("spec", p...) }
	cases := map[string]struct {
		q    *Quota
		want map[Key]Limit
		// shown is how status shows each limit's value: hard in status.hard.
		shown map[Key]string
		// formats are the unit families of the size limits.
		formats map[Key]resource.Format
	}{
		"binary sizes and a count": {
			q: mustQuota(t, builder.Quota("q", "shop").Total(5, "10Gi").MaxCheckpointSize("512Mi")),
			want: map[Key]Limit{
				NamespaceCheckpoints: {Field: &Field{Key: NamespaceCheckpoints, Level: "total", Resource: ResourceCheckpoints, Path: path("limits", "total", "checkpoints"), Name: "total.checkpoints"}, Value: 5, Written: "5"},
				NamespaceStorage:     {Field: &Field{Key: NamespaceStorage, Level: "total", Resource: ResourceStorage, Path: path("limits", "total", "storage"), Name: "total.storage"}, Value: 10 << 30, Written: "10Gi"},
				MaxCheckpointSize:    {Field: &Field{Key: MaxCheckpointSize, Resource: ResourceStorage, Path: path("maxCheckpointSize"), Name: "maxCheckpointSize"}, Value: 512 << 20, Written: "512Mi"},
			},
			shown:   map[Key]string{NamespaceCheckpoints: "5", NamespaceStorage: "10Gi", MaxCheckpointSize: "512Mi"},
			formats: map[Key]resource.Format{NamespaceStorage: resource.BinarySI, MaxCheckpointSize: resource.BinarySI},
		},
		"decimal sizes stay decimal, an exponent reads as decimal": {
			q: mustQuota(t, builder.Quota("q", "shop").PodNames("cache-0").Total(-1, "1000M").PerPod(-1, "2e9")),
			want: map[Key]Limit{
				GroupStorage: {Field: &Field{Key: GroupStorage, Level: "total", Resource: ResourceStorage, Path: path("limits", "total", "storage"), Name: "total.storage"}, Value: 1e9, Written: "1000M"},
				PodStorage:   {Field: &Field{Key: PodStorage, Level: "perPod", Resource: ResourceStorage, Path: path("limits", "perPod", "storage"), Name: "perPod.storage"}, Value: 2e9, Written: "2e9"},
			},
			shown:   map[Key]string{GroupStorage: "1G", PodStorage: "2G"},
			formats: map[Key]resource.Format{GroupStorage: resource.DecimalSI, PodStorage: resource.DecimalSI},
		},
		"retention rules are named as their fields": {
			q: mustCluster(t, builder.ClusterQuota("c").PerNamespace(3, "").MaxAge("168h").Orphans(cqv1.OrphanDelete, "10m")),
			want: map[Key]Limit{
				NamespaceCheckpoints: {Field: &Field{Key: NamespaceCheckpoints, Level: "perNamespace", Resource: ResourceCheckpoints, Path: path("limits", "perNamespace", "checkpoints"), Name: "perNamespace.checkpoints"}, Value: 3, Written: "3"},
				MaxAge:               {Field: &Field{Key: MaxAge, Path: path("maxAge"), Name: "maxAge"}, Written: "168h", Value: int64(168 * time.Hour)},
				Orphans:              {Field: &Field{Key: Orphans, Path: path("orphans"), Name: "orphans"}, Written: "Delete after 10m"},
			},
			shown: map[Key]string{NamespaceCheckpoints: "3"},
		},
		"orphans without a policy retain": {
			q: mustQuota(t, builder.Quota("q", "shop").Orphans("", "")),
			want: map[Key]Limit{
				Orphans: {Field: &Field{Key: Orphans, Path: path("orphans"), Name: "orphans"}, Written: "Retain"},
			},
			shown: map[Key]string{},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, shown, formats := map[Key]Limit{}, map[Key]string{}, map[Key]resource.Format{}
			for _, k := range tc.q.Keys() {
				l := tc.q.Limit(k)
				got[k] = l
				if l.Resource != "" {
					q := l.Quantity(l.Value)
					shown[k] = q.String()
				}
				if l.Resource == ResourceStorage {
					formats[k] = l.Format()
				}
			}
			if diff := cmp.Diff(tc.want, got, pathsEqual); diff != "" {
				t.Errorf("limits (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.shown, shown); diff != "" {
				t.Errorf("status shows (-want +got):\n%s", diff)
			}
			if tc.formats == nil {
				tc.formats = map[Key]resource.Format{}
			}
			if diff := cmp.Diff(tc.formats, formats); diff != "" {
				t.Errorf("unit families (-want +got):\n%s", diff)
			}
		})
	}
}
