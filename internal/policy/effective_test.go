package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// brief is what TestDescribe compares of a report; TestLimits covers the rest of a Limit.
type brief struct {
	Key                     Key
	Name, Path, Written     string
	State                   cqv1.LimitState
	OverriddenBy, Overrides []Ref
	// CappedBy and CappedAt name the binding ceiling, if any.
	CappedBy *Ref
	CappedAt string
}

func TestDescribe(t *testing.T) {
	cluster := Ref{Kind: KindClusterQuota, Name: "default"}
	ns := Ref{Kind: KindQuota, Namespace: "shop", Name: "ns"}
	cases := map[string]struct {
		q        any
		others   []any
		nsLabels map[string]map[string]string
		want     []brief
	}{
		"alone: every limit in force": {
			q: builder.Quota("ns", "shop").Total(5, "1Gi"),
			want: []brief{
				{Key: NamespaceCheckpoints, Name: "total.checkpoints", Path: "spec.limits.total.checkpoints", Written: "5", State: cqv1.LimitInForce},
				{Key: NamespaceStorage, Name: "total.storage", Path: "spec.limits.total.storage", Written: "1Gi", State: cqv1.LimitInForce},
			},
		},
		"namespace quota below the cluster default tightens it": {
			q:      builder.Quota("ns", "shop").Total(5, ""),
			others: []any{builder.ClusterQuota("default").PerNamespace(50, "")},
			want: []brief{
				{Key: NamespaceCheckpoints, Name: "total.checkpoints", Path: "spec.limits.total.checkpoints", Written: "5", State: cqv1.LimitInForce},
			},
		},
		"namespace quota above the cluster default is capped by it": {
			q:      builder.Quota("ns", "shop").Total(1000, "100Gi").MaxAge("720h"),
			others: []any{builder.ClusterQuota("default").PerNamespace(5, "1Gi").MaxAge("24h")},
			want: []brief{
				{Key: NamespaceCheckpoints, Name: "total.checkpoints", Path: "spec.limits.total.checkpoints", Written: "1000", State: cqv1.LimitCapped, CappedBy: &cluster, CappedAt: "5"},
				{Key: NamespaceStorage, Name: "total.storage", Path: "spec.limits.total.storage", Written: "100Gi", State: cqv1.LimitCapped, CappedBy: &cluster, CappedAt: "1Gi"},
				{Key: MaxAge, Name: "maxAge", Path: "spec.maxAge", Written: "720h", State: cqv1.LimitCapped, CappedBy: &cluster, CappedAt: "24h"},
			},
		},
		"the most specific cluster quota is the ceiling, as precedence picks it": {
			q: builder.Quota("ns", "shop").PodNames("db-0").PerPod(30, ""),
			others: []any{builder.ClusterQuota("default").PerPod(5, ""),
				builder.ClusterQuota("db").PodNames("db-0").PerPod(20, "")},
			want: []brief{
				{Key: PodCheckpoints, Name: "perPod.checkpoints", Path: "spec.limits.perPod.checkpoints", Written: "30", State: cqv1.LimitCapped,
					CappedBy: &Ref{Kind: KindClusterQuota, Name: "db"}, CappedAt: "20"},
			},
		},
		"a namespace quota's orphan rule overrides the cluster's: orphans have no ceiling": {
			q:      builder.Quota("ns", "shop").Orphans(cqv1.OrphanRetain, ""),
			others: []any{builder.ClusterQuota("default").Orphans(cqv1.OrphanDelete, "10m")},
			want: []brief{
				{Key: Orphans, Name: "orphans", Path: "spec.orphans", Written: "Retain", State: cqv1.LimitInForce, Overrides: []Ref{cluster}},
			},
		},
		"cluster default stays in force beside a namespace quota: it is a ceiling": {
			q:      builder.ClusterQuota("default").PerNamespace(50, "").PerPod(9, ""),
			others: []any{builder.Quota("ns", "shop").Total(5, "")},
			want: []brief{
				{Key: NamespaceCheckpoints, Name: "perNamespace.checkpoints", Path: "spec.limits.perNamespace.checkpoints", Written: "50", State: cqv1.LimitInForce},
				{Key: PodCheckpoints, Name: "perPod.checkpoints", Path: "spec.limits.perPod.checkpoints", Written: "9", State: cqv1.LimitInForce},
			},
		},
		"a namespace the cluster quota does not select": {
			q:        builder.ClusterQuota("default").NamespaceSelector(map[string]string{"team": "a"}).PerNamespace(50, ""),
			others:   []any{builder.Quota("ns", "shop").Total(5, "")},
			nsLabels: map[string]map[string]string{"shop": {"team": "b"}},
			want: []brief{
				{Key: NamespaceCheckpoints, Name: "perNamespace.checkpoints", Path: "spec.limits.perNamespace.checkpoints", Written: "50", State: cqv1.LimitInForce},
			},
		},
		"pod quota partly overridden by a container quota": {
			q:      builder.Quota("cache", "shop").PodNames("cache-0").PerContainer(3, ""),
			others: []any{builder.Quota("redis", "shop").ContainerNames("redis").PerContainer(1, "")},
			want: []brief{
				{Key: ContainerCheckpoints, Name: "perContainer.checkpoints", Path: "spec.limits.perContainer.checkpoints", Written: "3", State: cqv1.LimitPartlyOverridden, OverriddenBy: []Ref{{KindQuota, "shop", "redis"}}},
			},
		},
		"only quotas setting the same limit override it": {
			q:      builder.Quota("ns", "shop").PerPod(3, ""),
			others: []any{builder.Quota("all", "shop").ContainerNames("a").PerPod(1, ""), builder.Quota("cache", "shop").PodNames("x").MaxAge("1h")},
			want: []brief{
				{Key: PodCheckpoints, Name: "perPod.checkpoints", Path: "spec.limits.perPod.checkpoints", Written: "3", State: cqv1.LimitPartlyOverridden, OverriddenBy: []Ref{{KindQuota, "shop", "all"}}},
			},
		},
		"group limit always in force": {
			q:      builder.Quota("cache", "shop").PodNames("cache-0").Total(3, ""),
			others: []any{builder.Quota("c", "shop").PodNames("cache-0").ContainerNames("redis").Total(1, "")},
			want: []brief{
				{Key: GroupCheckpoints, Name: "total.checkpoints", Path: "spec.limits.total.checkpoints", Written: "3", State: cqv1.LimitInForce},
			},
		},
		"overridden by a more specific quota, overriding a less specific one": {
			q:      builder.Quota("cache", "shop").PodNames("cache-0").MaxAge("1h"),
			others: []any{builder.Quota("ns", "shop").MaxAge("2h"), builder.Quota("c", "shop").PodNames("cache-0").ContainerNames("redis").MaxAge("3h")},
			want: []brief{
				{Key: MaxAge, Name: "maxAge", Path: "spec.maxAge", Written: "1h", State: cqv1.LimitPartlyOverridden, OverriddenBy: []Ref{{KindQuota, "shop", "c"}}, Overrides: []Ref{ns}},
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			q := build(t, tc.q)[0]
			var got []brief
			for _, r := range Describe(q, build(t, tc.others...), tc.nsLabels) {
				b := brief{Key: r.Limit.Key, Name: r.Limit.Name, Path: r.Limit.Path.String(), Written: r.Limit.Written,
					State: r.State(), OverriddenBy: r.OverriddenBy(), Overrides: r.Overrides()}
				if c := r.Cap(); c != nil {
					b.CappedBy, b.CappedAt = &c.By, c.Limit.Written
				}
				got = append(got, b)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("reports (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCovers(t *testing.T) {
	// Statically, a more specific quota always narrows the target, so Describe can only
	// say PartlyOverridden; covers still decides the rare whole override correctly.
	cases := map[string]struct {
		a, b any
		want bool
	}{
		"same namespace, every pod covers named pods": {a: builder.Quota("a", "s"), b: builder.Quota("b", "s").PodNames("x"), want: true},
		"named pods do not cover every pod":           {a: builder.Quota("a", "s").PodNames("x"), b: builder.Quota("b", "s"), want: false},
		"superset of names":                           {a: builder.Quota("a", "s").PodNames("x", "y"), b: builder.Quota("b", "s").PodNames("x"), want: true},
		"other namespace":                             {a: builder.Quota("a", "s"), b: builder.Quota("b", "t"), want: false},
		"a namespace never covers a cluster":          {a: builder.Quota("a", "s"), b: builder.ClusterQuota("b"), want: false},
		"cluster without selector covers a namespace": {a: builder.ClusterQuota("a"), b: builder.Quota("b", "s"), want: true},
		"cluster with selector and a namespace":       {a: builder.ClusterQuota("a").NamespaceSelector(map[string]string{"x": "y"}), b: builder.Quota("b", "s"), want: false},
		"different pod selectors":                     {a: builder.Quota("a", "s").PodSelector(map[string]string{"x": "y"}), b: builder.Quota("b", "s").PodSelector(map[string]string{"x": "z"}), want: false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			qs := build(t, tc.a, tc.b)
			if got := covers(qs[0], qs[1]); got != tc.want {
				t.Errorf("covers = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEffective(t *testing.T) {
	ns := mustQuota(t, builder.Quota("ns", "shop").PerPod(5, "").Total(10, ""))
	pods := mustQuota(t, builder.Quota("pods", "shop").PodNames("cache-0").PerPod(2, ""))
	quotas := []*Quota{ns, pods}
	s := func(pod string) Subject {
		return Subject{Namespace: "shop", Pod: pod, PodLabels: map[string]string{}, Container: "c"}
	}
	cases := map[string]struct {
		pods []string
		want []cqv1.EffectiveLimit
	}{
		"no archive": {
			want: []cqv1.EffectiveLimit{
				{Limit: "total.checkpoints", Value: "10", State: cqv1.LimitInForce},
				{Limit: "perPod.checkpoints", Value: "5", State: cqv1.LimitInForce},
			},
		},
		"some archives governed by the pod quota": {
			pods: []string{"cache-0", "web-0"},
			want: []cqv1.EffectiveLimit{
				{Limit: "total.checkpoints", Value: "10", State: cqv1.LimitInForce},
				{Limit: "perPod.checkpoints", Value: "5", State: cqv1.LimitPartlyOverridden, OverriddenBy: []string{"CheckpointQuota shop/pods"}},
			},
		},
		"every archive governed by the pod quota": {
			pods: []string{"cache-0", "cache-0"},
			want: []cqv1.EffectiveLimit{
				{Limit: "total.checkpoints", Value: "10", State: cqv1.LimitInForce},
				{Limit: "perPod.checkpoints", Value: "5", State: cqv1.LimitOverridden, OverriddenBy: []string{"CheckpointQuota shop/pods"}},
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var res []Resolution
			for _, p := range tc.pods {
				res = append(res, Resolve(quotas, s(p)))
			}
			if diff := cmp.Diff(tc.want, APILimits(Effective(ns, res))); diff != "" {
				t.Errorf("effective policy (-want +got):\n%s", diff)
			}
		})
	}
}
