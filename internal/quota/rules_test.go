package quota

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// TestRulesOf checks the rules Resolve hands Compute for an archive: each limit with its
// quota, level, resource and value; the retention rules; and nothing where no quota
// targets the archive. Each case has one quota per limit, so no precedence is at stake.
func TestRulesOf(t *testing.T) {
	const mi = 1 << 20
	archive := Archive{Name: "c-1", Namespace: "shop", Pod: "cache-0", PodUID: "uid-1", Container: "redis"}
	cases := map[string]struct {
		quotas func(add func(*policy.Quota, error))
		labels Labels
		want   Rules
	}{
		"a namespace's quota: total counts the namespace, each level its scope": {
			quotas: func(add func(*policy.Quota, error)) {
				add(policy.FromCheckpointQuota(builder.Quota("q", "shop").Total(10, "1Gi").PerPod(3, "").PerContainer(2, "10Mi").Obj()))
			},
			want: Rules{Bounds: []Bound{
				{Per: PerNamespace, Limit: policy.Limit{Field: &policy.Field{Name: "total.checkpoints", Resource: policy.ResourceCheckpoints}, Value: 10}},
				{Per: PerNamespace, Limit: policy.Limit{Field: &policy.Field{Name: "total.storage", Resource: policy.ResourceStorage}, Value: 1 << 30}},
				{Per: PerPod, Limit: policy.Limit{Field: &policy.Field{Name: "perPod.checkpoints", Resource: policy.ResourceCheckpoints}, Value: 3}},
				{Per: PerContainer, Limit: policy.Limit{Field: &policy.Field{Name: "perContainer.checkpoints", Resource: policy.ResourceCheckpoints}, Value: 2}},
				{Per: PerContainer, Limit: policy.Limit{Field: &policy.Field{Name: "perContainer.storage", Resource: policy.ResourceStorage}, Value: 10 * mi}},
			}},
		},
		"a targeted quota's total counts what it targets together": {
			quotas: func(add func(*policy.Quota, error)) {
				add(policy.FromCheckpointQuota(builder.Quota("q", "shop").PodNames("cache-0").Total(4, "").Obj()))
			},
			want: Rules{Bounds: []Bound{{Per: PerGroup, Limit: policy.Limit{Field: &policy.Field{Name: "total.checkpoints", Resource: policy.ResourceCheckpoints}, Value: 4}}}},
		},
		"a cluster quota: perNamespace counts the namespace, total every namespace it selects together": {
			quotas: func(add func(*policy.Quota, error)) {
				add(policy.FromClusterQuota(builder.ClusterQuota("c").PerNamespace(20, "").Total(-1, "5Gi").Obj()))
			},
			want: Rules{Bounds: []Bound{
				{Per: PerNamespace, Limit: policy.Limit{Field: &policy.Field{Name: "perNamespace.checkpoints", Resource: policy.ResourceCheckpoints}, Value: 20}},
				{Per: PerGroup, Limit: policy.Limit{Field: &policy.Field{Name: "total.storage", Resource: policy.ResourceStorage}, Value: 5 << 30}},
			}},
		},
		"retention: the size in bytes, the age as a duration": {
			quotas: func(add func(*policy.Quota, error)) {
				add(policy.FromCheckpointQuota(builder.Quota("q", "shop").MaxCheckpointSize("2Gi").MaxAge("168h").Obj()))
			},
			want: Rules{MaxSize: &Retention{Value: 2 << 30}, MaxAge: &Retention{Duration: 168 * time.Hour}},
		},
		"orphans under Delete prune after the grace period": {
			quotas: func(add func(*policy.Quota, error)) {
				add(policy.FromCheckpointQuota(builder.Quota("q", "shop").Orphans(cqv1.OrphanDelete, "15m").Obj()))
			},
			want: Rules{Orphans: &Retention{Duration: 15 * time.Minute}},
		},
		"orphans under Retain are no rule": {
			quotas: func(add func(*policy.Quota, error)) {
				add(policy.FromCheckpointQuota(builder.Quota("q", "shop").Orphans(cqv1.OrphanRetain, "").Obj()))
			},
		},
		"a quota of another namespace is no rule": {
			quotas: func(add func(*policy.Quota, error)) {
				add(policy.FromCheckpointQuota(builder.Quota("q", "team").PerPod(1, "").Obj()))
			},
		},
		"a quota for other pods or containers is no rule": {
			quotas: func(add func(*policy.Quota, error)) {
				add(policy.FromCheckpointQuota(builder.Quota("q", "shop").PodNames("web-0").PerPod(1, "").Obj()))
				add(policy.FromCheckpointQuota(builder.Quota("r", "shop").ContainerNames("app").PerPod(1, "").Obj()))
			},
		},
		"each limit names the index of its quota": {
			quotas: func(add func(*policy.Quota, error)) {
				add(policy.FromCheckpointQuota(builder.Quota("q", "team").PerPod(1, "").Obj()))
				add(policy.FromCheckpointQuota(builder.Quota("q", "shop").PerPod(1, "").Obj()))
			},
			want: Rules{Bounds: []Bound{{Quota: 1, Per: PerPod, Limit: policy.Limit{Field: &policy.Field{Name: "perPod.checkpoints", Resource: policy.ResourceCheckpoints}, Value: 1}}}},
		},
		"a quota that might govern but does not parse holds the archive": {
			quotas: func(add func(*policy.Quota, error)) {
				add(policy.FromCheckpointQuota(builder.Quota("q", "shop").PerPod(1, "").Obj()))
			},
			labels: Labels{Unparsed: []policy.Ref{{Kind: policy.KindQuota, Namespace: "shop", Name: "broken"}}},
			want: Rules{Bounds: []Bound{{Per: PerPod, Limit: policy.Limit{Field: &policy.Field{Name: "perPod.checkpoints", Resource: policy.ResourceCheckpoints}, Value: 1}}},
				Held: HeldByUnparsed(policy.Ref{Kind: policy.KindQuota, Namespace: "shop", Name: "broken"})},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var quotas []*policy.Quota
			tc.quotas(collect(t, &quotas))
			res := Govern(quotas, []Archive{archive}, tc.labels)
			byKey := cmpopts.SortSlices(func(a, b Bound) bool { return a.Name < b.Name })
			// What the spec wrote (Key, Level, Path, Written) is policy's to test.
			written := cmpopts.IgnoreFields(policy.Limit{}, "Key", "Level", "Path", "Written")
			if diff := cmp.Diff(tc.want, *res.Rules[0], byKey, written, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolutionQuotas(t *testing.T) {
	var quotas []*policy.Quota
	add := collect(t, &quotas)
	add(policy.FromClusterQuota(builder.ClusterQuota("default").PerPod(5, "").Obj()))
	add(policy.FromCheckpointQuota(builder.Quota("preview", "shop").PerPod(1, "").Enforcement(cqv1.EnforcementDryRun).Obj()))
	res := Govern(quotas, nil, Labels{})
	want := []Meta{{Name: "ClusterCheckpointQuota default", Cluster: true}, {Name: "CheckpointQuota shop/preview", DryRun: true}}
	if diff := cmp.Diff(want, res.Quotas); diff != "" {
		t.Errorf("quotas (-want +got):\n%s", diff)
	}
	if len(res.Rules) != 0 {
		t.Errorf("%d rules without archives", len(res.Rules))
	}
}

// TestConflictsToldOncePerLimitAndQuota checks the conflicts a quota reports: one per
// limit and other quota, whatever the pods, sorted by key and quota, at most MaxConflicts.
func TestConflictsToldOncePerLimitAndQuota(t *testing.T) {
	var quotas []*policy.Quota
	add := collect(t, &quotas)
	// Cluster quotas of one specificity, each setting perContainer.checkpoints: every one
	// conflicts with every other for every pod.
	for i := range MaxConflicts + 2 {
		add(policy.FromClusterQuota(builder.ClusterQuota(fmt.Sprintf("q%02d", i)).PerContainer(int64(i+1), "").Obj()))
	}
	add(policy.FromClusterQuota(builder.ClusterQuota("sizes").MaxCheckpointSize("1Gi").Obj()))
	var archives []Archive
	for p := range 3 {
		archives = append(archives, Archive{Namespace: "shop", Pod: fmt.Sprintf("pod-%d", p), Container: "c"})
	}
	res := Govern(quotas, archives, Labels{})

	smallest := res.Conflicts(0)
	if len(smallest) != MaxConflicts {
		t.Fatalf("q00 reports %d conflicts, want MaxConflicts (%d) of the %d", len(smallest), MaxConflicts, MaxConflicts+1)
	}
	for i, c := range smallest {
		if !c.Won || c.Key != policy.ContainerCheckpoints || c.Pod != "shop/pod-0" {
			t.Errorf("conflict %d of q00: %+v, want its smaller perContainer.checkpoints in force, first seen on shop/pod-0", i, c)
		}
		if i > 0 && smallest[i-1].Other.String() >= c.Other.String() {
			t.Errorf("conflicts not sorted by the other quota: %s before %s", smallest[i-1].Other, c.Other)
		}
	}
	last := res.Conflicts(MaxConflicts + 1)
	for _, c := range last {
		if c.Won {
			t.Errorf("the largest limit won against %s", c.Other)
		}
	}
	if got := res.Conflicts(len(quotas) - 1); len(got) != 0 {
		t.Errorf("a quota that sets no limit in conflict reports %+v", got)
	}
}

func TestHeldByUnparsed(t *testing.T) {
	got := HeldByUnparsed(policy.Ref{Kind: policy.KindClusterQuota, Name: "default"})
	want := "ClusterCheckpointQuota default, which might govern them, does not parse (fix its spec)"
	if got != want {
		t.Errorf("HeldByUnparsed = %q, want %q", got, want)
	}
}

func TestInputOf(t *testing.T) {
	var quotas []*policy.Quota
	collect(t, &quotas)(policy.FromCheckpointQuota(builder.Quota("q", "shop").PerPod(1, "").Obj()))
	archives := []Archive{{Name: "a", Namespace: "shop", Pod: "p", Container: "c"}, {Name: "b", Namespace: "team", Pod: "p", Container: "c"}}
	in, res := InputOf(quotas, archives, Labels{}, t0)
	if !in.Now.Equal(t0) || len(in.Archives) != 2 || &in.Archives[0] != &archives[0] {
		t.Errorf("input: now %s, %d archives (shared: %v); want t0 and the archives as given", in.Now, len(in.Archives), &in.Archives[0] == &archives[0])
	}
	if diff := cmp.Diff(res.Quotas, in.Quotas); diff != "" {
		t.Errorf("quotas of the input and the resolution (-res +in):\n%s", diff)
	}
	if len(in.Rules) != 2 || in.Rules[0] != res.Rules[0] || len(in.Rules[0].Bounds) != 1 || len(in.Rules[1].Bounds) != 0 {
		t.Errorf("rules: %+v; want the resolution's, shop's archive under q's limit, team's under none", in.Rules)
	}
}

// TestHeldFor checks, one quota at a time, when an archive whose pod's labels are not known
// is held: only where a quota that selects pods by label might target it, by its
// namespace, pod name and container.
func TestHeldFor(t *testing.T) {
	app := map[string]string{"app": "db"}
	quota := func(ns string) *builder.QuotaBuilder { return builder.Quota("q", ns) }
	cases := map[string]struct {
		quota *builder.QuotaBuilder
		// known: the pod's labels are known (here: none), as for a live pod.
		known bool
		want  bool
	}{
		"a selector that might select the pod":    {quota: quota("shop").PodSelector(app), want: true},
		"a selector, the pod's labels known":      {quota: quota("shop").PodSelector(app), known: true},
		"pod names alone need no labels":          {quota: quota("shop").PodNames("db-0")},
		"a selector for other pods by name":       {quota: quota("shop").PodSelector(app).PodNames("web-0")},
		"a selector for other containers":         {quota: quota("shop").PodSelector(app).ContainerNames("sidecar")},
		"a selector for the pod's name":           {quota: quota("shop").PodSelector(app).PodNames("db-0").ContainerNames("pg"), want: true},
		"a selector of another namespace's quota": {quota: quota("team").PodSelector(app)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			q, err := policy.FromCheckpointQuota(tc.quota.PerPod(1, "").Obj())
			if err != nil {
				t.Fatal(err)
			}
			labels := Labels{Pod: func(*Archive) map[string]string {
				if tc.known {
					return map[string]string{}
				}
				return nil
			}}
			res := Govern([]*policy.Quota{q}, []Archive{{Name: "c", Namespace: "shop", Pod: "db-0", PodUID: "u", Container: "pg"}}, labels)
			if got := res.Rules[0].Held == HeldByLabels; got != tc.want {
				t.Errorf("held: %v, want %v (%q)", got, tc.want, res.Rules[0].Held)
			}
		})
	}
}
