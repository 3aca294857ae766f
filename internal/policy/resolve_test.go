package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// governing maps each governed key to the governing quota's name, for comparing.
func governing(r Resolution) map[Key]string {
	out := map[Key]string{}
	for k, q := range r.Governing {
		out[k] = q.Ref.String()
	}
	return out
}

func TestResolve(t *testing.T) {
	redis := map[string]string{"app": "redis"}
	archive := Subject{Namespace: "shop", NamespaceLabels: map[string]string{"team": "a"}, Pod: "cache-0", PodLabels: redis, Container: "redis"}
	cases := map[string]struct {
		quotas        []any // *builder.QuotaBuilder or *builder.ClusterQuotaBuilder
		s             Subject
		wantGov       map[Key]string
		wantGroups    []string
		wantConflicts []RuntimeConflict
	}{
		"namespace quota overrides the cluster perNamespace": {
			quotas: []any{
				builder.ClusterQuota("default").PerNamespace(100, "50Gi").PerPod(20, ""),
				builder.Quota("ns", "shop").Total(50, ""),
			},
			s: archive,
			wantGov: map[Key]string{
				NamespaceCheckpoints: "CheckpointQuota shop/ns",
				NamespaceStorage:     "ClusterCheckpointQuota default",
				PodCheckpoints:       "ClusterCheckpointQuota default",
			},
		},
		"precedence: container, pod, namespace, cluster targeted, cluster": {
			quotas: []any{
				builder.ClusterQuota("all").PerContainer(1, "").MaxAge("1h"),
				builder.ClusterQuota("redis").ContainerNames("redis").PerContainer(2, "").PerPod(2, ""),
				builder.Quota("ns", "shop").PerContainer(3, "").PerPod(3, "").MaxAge("2h"),
				builder.Quota("pods", "shop").PodSelector(redis).PerContainer(4, "").Total(9, ""),
				builder.Quota("containers", "shop").ContainerNames("redis").PerContainer(5, ""),
			},
			s: archive,
			wantGov: map[Key]string{
				ContainerCheckpoints: "CheckpointQuota shop/containers",
				PodCheckpoints:       "CheckpointQuota shop/ns",
				MaxAge:               "CheckpointQuota shop/ns",
			},
			wantGroups: []string{"CheckpointQuota shop/pods"},
		},
		"a quota that does not target the archive does not govern it": {
			quotas: []any{
				builder.Quota("ns", "shop").PerPod(3, ""),
				builder.Quota("other", "shop").PodNames("cache-1").PerPod(1, ""),
				builder.Quota("web", "shop").PodSelector(map[string]string{"app": "web"}).PerPod(1, ""),
			},
			s:       archive,
			wantGov: map[Key]string{PodCheckpoints: "CheckpointQuota shop/ns"},
		},
		"two selectors on one pod: the smaller limit wins and the pair is reported": {
			quotas: []any{
				builder.Quota("a", "shop").PodSelector(redis).PerPod(10, "").MaxAge("24h"),
				builder.Quota("b", "shop").PodSelector(map[string]string{"app": "redis", "tier": "cache"}).PerPod(5, "").MaxAge("24h"),
			},
			s: Subject{Namespace: "shop", Pod: "cache-0", PodLabels: map[string]string{"app": "redis", "tier": "cache"}, Container: "redis"},
			wantGov: map[Key]string{
				PodCheckpoints: "CheckpointQuota shop/b",
				MaxAge:         "CheckpointQuota shop/a", // equal values: no conflict, first by name
			},
			wantConflicts: []RuntimeConflict{{
				Key:    PodCheckpoints,
				Winner: Ref{Kind: KindQuota, Namespace: "shop", Name: "b"},
				Loser:  Ref{Kind: KindQuota, Namespace: "shop", Name: "a"},
			}},
		},
		"orphans tie: the policy that keeps more wins": {
			quotas: []any{
				builder.Quota("a", "shop").PodNames("cache-0").Orphans(cqv1.OrphanDelete, "1h"),
				builder.Quota("b", "shop").PodSelector(redis).Orphans(cqv1.OrphanRetain, "10m"),
			},
			s:       archive,
			wantGov: map[Key]string{Orphans: "CheckpointQuota shop/b"},
			wantConflicts: []RuntimeConflict{{
				Key:    Orphans,
				Winner: Ref{Kind: KindQuota, Namespace: "shop", Name: "b"},
				Loser:  Ref{Kind: KindQuota, Namespace: "shop", Name: "a"},
			}},
		},
		"cluster total is a group limit beside perNamespace": {
			quotas: []any{
				builder.ClusterQuota("c").Total(1000, "").PerNamespace(10, ""),
			},
			s:          archive,
			wantGov:    map[Key]string{NamespaceCheckpoints: "ClusterCheckpointQuota c"},
			wantGroups: []string{"ClusterCheckpointQuota c"},
		},
		"unknown pod: selector quotas drop out": {
			quotas: []any{
				builder.Quota("ns", "shop").PerPod(3, ""),
				builder.Quota("sel", "shop").PodSelector(redis).PerPod(1, ""),
			},
			s:       Subject{Namespace: "shop", Pod: "gone", Container: "redis"},
			wantGov: map[Key]string{PodCheckpoints: "CheckpointQuota shop/ns"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			quotas := build(t, tc.quotas...)
			res := Resolve(quotas, tc.s)
			if diff := cmp.Diff(tc.wantGov, governing(res)); diff != "" {
				t.Errorf("governing (-want +got):\n%s", diff)
			}
			var groups []string
			for _, q := range res.Groups {
				groups = append(groups, q.Ref.String())
			}
			if diff := cmp.Diff(tc.wantGroups, groups); diff != "" {
				t.Errorf("groups (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantConflicts, res.Conflicts); diff != "" {
				t.Errorf("conflicts (-want +got):\n%s", diff)
			}
		})
	}
}

func build(t *testing.T, bs ...any) []*Quota {
	t.Helper()
	var out []*Quota
	for _, b := range bs {
		switch b := b.(type) {
		case *builder.QuotaBuilder:
			out = append(out, mustQuota(t, b))
		case *builder.ClusterQuotaBuilder:
			out = append(out, mustCluster(t, b))
		default:
			t.Fatalf("unknown builder %T", b)
		}
	}
	return out
}

func TestConflicts(t *testing.T) {
	redis := map[string]string{"app": "redis"}
	cases := map[string]struct {
		candidate any
		others    []any
		want      []Conflict
	}{
		"two untargeted quotas in one namespace": {
			candidate: builder.Quota("b", "shop").Total(10, "1Gi").MaxAge("1h"),
			others:    []any{builder.Quota("a", "shop").Total(20, "")},
			want:      []Conflict{{Other: Ref{KindQuota, "shop", "a"}, Keys: []Key{NamespaceCheckpoints}}},
		},
		"same value is no conflict": {
			candidate: builder.Quota("b", "shop").Total(20, ""),
			others:    []any{builder.Quota("a", "shop").Total(20, "")},
		},
		"different limits are no conflict": {
			candidate: builder.Quota("b", "shop").PerPod(10, ""),
			others:    []any{builder.Quota("a", "shop").Total(20, "")},
		},
		"other namespace": {
			candidate: builder.Quota("b", "shop").Total(10, ""),
			others:    []any{builder.Quota("a", "shop-prod").Total(20, "")},
		},
		"an update never conflicts with itself": {
			candidate: builder.Quota("a", "shop").Total(10, ""),
			others:    []any{builder.Quota("a", "shop").Total(20, "")},
		},
		"overlapping pod names": {
			candidate: builder.Quota("b", "shop").PodNames("cache-1", "cache-2").PerPod(1, ""),
			others:    []any{builder.Quota("a", "shop").PodNames("cache-0", "cache-1").PerPod(2, "")},
			want:      []Conflict{{Other: Ref{KindQuota, "shop", "a"}, Keys: []Key{PodCheckpoints}}},
		},
		"disjoint pod names": {
			candidate: builder.Quota("b", "shop").PodNames("cache-2").PerPod(1, ""),
			others:    []any{builder.Quota("a", "shop").PodNames("cache-0", "cache-1").PerPod(2, "")},
		},
		"equal selectors": {
			candidate: builder.Quota("b", "shop").PodSelector(redis).PerPod(1, ""),
			others:    []any{builder.Quota("a", "shop").PodSelector(redis).PerPod(2, "")},
			want:      []Conflict{{Other: Ref{KindQuota, "shop", "a"}, Keys: []Key{PodCheckpoints}}},
		},
		"different selectors are left to runtime": {
			candidate: builder.Quota("b", "shop").PodSelector(redis).PerPod(1, ""),
			others:    []any{builder.Quota("a", "shop").PodSelector(map[string]string{"tier": "cache"}).PerPod(2, "")},
		},
		"overlapping container names": {
			candidate: builder.Quota("b", "shop").ContainerNames("redis").PerContainer(1, ""),
			others:    []any{builder.Quota("a", "shop").ContainerNames("redis", "sentinel").PerContainer(2, "")},
			want:      []Conflict{{Other: Ref{KindQuota, "shop", "a"}, Keys: []Key{ContainerCheckpoints}}},
		},
		"containers of disjoint pods": {
			candidate: builder.Quota("b", "shop").PodNames("x").ContainerNames("redis").PerContainer(1, ""),
			others:    []any{builder.Quota("a", "shop").PodNames("y").ContainerNames("redis").PerContainer(2, "")},
		},
		"different specificity never conflicts": {
			candidate: builder.Quota("b", "shop").PodNames("x").PerPod(1, ""),
			others:    []any{builder.Quota("a", "shop").PerPod(2, ""), builder.ClusterQuota("c").PerPod(3, "")},
		},
		"group limits never conflict": {
			candidate: builder.Quota("b", "shop").PodNames("x").Total(1, ""),
			others:    []any{builder.Quota("a", "shop").PodNames("x").Total(2, "")},
		},
		"two cluster quotas without selectors": {
			candidate: builder.ClusterQuota("b").PerNamespace(1, "").Total(5, ""),
			others:    []any{builder.ClusterQuota("a").PerNamespace(2, "").Total(6, "")},
			want:      []Conflict{{Other: Ref{Kind: KindClusterQuota, Name: "a"}, Keys: []Key{NamespaceCheckpoints}}},
		},
		"two cluster quotas with equal selectors": {
			candidate: builder.ClusterQuota("b").NamespaceSelector(map[string]string{"team": "a"}).MaxAge("1h"),
			others:    []any{builder.ClusterQuota("a").NamespaceSelector(map[string]string{"team": "a"}).MaxAge("2h")},
			want:      []Conflict{{Other: Ref{Kind: KindClusterQuota, Name: "a"}, Keys: []Key{MaxAge}}},
		},
		"cluster quotas with different selectors": {
			candidate: builder.ClusterQuota("b").NamespaceSelector(map[string]string{"team": "a"}).MaxAge("1h"),
			others:    []any{builder.ClusterQuota("a").MaxAge("2h")},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			candidate := build(t, tc.candidate)[0]
			got := Conflicts(candidate, build(t, tc.others...))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("conflicts (-want +got):\n%s", diff)
			}
		})
	}
}
