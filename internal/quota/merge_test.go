package quota

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// partsOf computes each list of archives as a part of its own.
func partsOf(quotas []*policy.Quota, now time.Time, lists ...[]Archive) []*Part {
	var parts []*Part
	for _, own := range lists {
		res := Govern(quotas, own, Labels{})
		parts = append(parts, ComputePart(Input{Archives: own, Quotas: res.Quotas, Rules: res.Rules, Now: now}, res))
	}
	return parts
}

func at(as []Archive, d ...time.Duration) []Archive {
	for i := range as {
		as[i].CheckpointTime = t0.Add(d[i])
	}
	return as
}

// TestMerge checks how Merge joins parts computed apart: the archives one part after the
// other, prunes in age order across parts with their indices moved, each limit with the
// scope nearest it across parts, conflicts told once per limit and other quota, and the
// earliest expiry.
func TestMerge(t *testing.T) {
	var quotas []*policy.Quota
	add := collect(t, &quotas)
	add(policy.FromClusterQuota(builder.ClusterQuota("x").PerContainer(1, "").MaxAge("2h").Obj()))
	add(policy.FromClusterQuota(builder.ClusterQuota("y").PerContainer(2, "").Obj()))
	add(policy.FromCheckpointQuota(builder.Quota("only-b", "b").PerPod(5, "").Obj()))
	const mi = 1 << 20
	a := at(archives("a", "p", "c", 2, mi), 0, 2*time.Minute)
	b := at(archives("b", "p", "c", 3, 2*mi), -time.Minute, 3*time.Minute, 4*time.Minute)
	merged, res, got := Merge(quotas, partsOf(quotas, t0, a, b))

	if diff := cmp.Diff(pointersTo(concat(a, b)), merged); diff != "" {
		t.Fatalf("archives (-want +got):\n%s", diff)
	}
	// x's limit of 1 wins over y's 2 in both namespaces, oldest first across them: b's
	// oldest (index 2 once shifted) before a's.
	var pruned []string
	for _, p := range got.Prune {
		pruned = append(pruned, merged[p.Archive].Namespace+"/"+merged[p.Archive].Name)
	}
	if diff := cmp.Diff([]string{"b/p-c-0", "a/p-c-0", "b/p-c-1"}, pruned); diff != "" {
		t.Errorf("pruned (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(got.Prune, got.Quotas[0].Pending); diff != "" {
		t.Errorf("x's pending is what it prunes (-want +got):\n%s", diff)
	}
	wantLimits := map[int][]LimitUsage{
		0: {{Name: "perContainer.checkpoints", Per: PerContainer, Resource: policy.ResourceCheckpoints, Hard: 1, Used: 3, Scope: "b/p/c"}},
		1: nil, // overridden everywhere: in force for no archive
		2: {{Name: "perPod.checkpoints", Per: PerPod, Resource: policy.ResourceCheckpoints, Hard: 5, Used: 3, Scope: "b/p"}},
	}
	for qi, want := range wantLimits {
		if diff := cmp.Diff(want, got.Quotas[qi].Limits, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("limits of %s (-want +got):\n%s", quotas[qi].Ref, diff)
		}
	}
	if c, b := got.Quotas[0].Checkpoints, got.Quotas[0].Bytes; c != 5 || b != 8*mi {
		t.Errorf("x counts %d archives, %d bytes; want every archive: 5, %d", c, b, 8*mi)
	}
	wantConflicts := []Conflict{{Key: policy.ContainerCheckpoints, Other: quotas[1].Ref, Pod: "a/p", Won: true}}
	if diff := cmp.Diff(wantConflicts, res.Conflicts(0)); diff != "" {
		t.Errorf("x's conflicts, one per limit and quota whatever the parts (-want +got):\n%s", diff)
	}
	if want := t0.Add(-time.Minute + 2*time.Hour); !got.NextExpiry.Equal(want) {
		t.Errorf("next expiry %s, want the earliest of the parts', %s", got.NextExpiry, want)
	}
	if len(res.Rules) != len(merged) {
		t.Errorf("%d rules for %d archives", len(res.Rules), len(merged))
	}
}

func TestMergeNothing(t *testing.T) {
	var quotas []*policy.Quota
	collect(t, &quotas)(policy.FromClusterQuota(builder.ClusterQuota("x").PerContainer(1, "").Obj()))
	archives, res, got := Merge(quotas, nil)
	if len(archives) != 0 || len(res.Rules) != 0 || len(got.Prune) != 0 || !got.NextExpiry.IsZero() {
		t.Errorf("merging no part: %d archives, %d rules, %d prunes, expiry %s; want none", len(archives), len(res.Rules), len(got.Prune), got.NextExpiry)
	}
	if diff := cmp.Diff([]Outcome{{}}, got.Quotas, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
}

func TestShifted(t *testing.T) {
	cases := map[string]struct {
		in   []Prune
		off  int
		want []Prune
	}{
		"nothing":      {off: 3},
		"moved by off": {in: []Prune{{Archive: 0, Rule: "k"}, {Archive: 4}}, off: 3, want: []Prune{{Archive: 3, Rule: "k"}, {Archive: 7}}},
		"no move":      {in: []Prune{{Archive: 1}}, want: []Prune{{Archive: 1}}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := append([]Prune(nil), tc.in...)
			if diff := cmp.Diff(tc.want, shifted(in, tc.off)); diff != "" {
				t.Errorf("shifted (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.in, in); diff != "" {
				t.Errorf("the input changed (-before +after):\n%s", diff)
			}
		})
	}
}

func TestMergeSorted(t *testing.T) {
	byArchive := func(a, b Prune) int { return a.Archive - b.Archive }
	p := func(idx ...int) []Prune {
		var out []Prune
		for _, i := range idx {
			out = append(out, Prune{Archive: i})
		}
		return out
	}
	cases := map[string]struct {
		lists [][]Prune
		want  []Prune
	}{
		"no list":                 {},
		"empty lists":             {lists: [][]Prune{nil, {}}},
		"one list as it is":       {lists: [][]Prune{nil, p(1, 5, 9)}, want: p(1, 5, 9)},
		"interleaved":             {lists: [][]Prune{p(1, 4, 7), p(2, 5, 8), p(3, 6, 9)}, want: p(1, 2, 3, 4, 5, 6, 7, 8, 9)},
		"one list after another":  {lists: [][]Prune{p(7, 8), p(1, 2)}, want: p(1, 2, 7, 8)},
		"uneven, with empty ones": {lists: [][]Prune{p(5), nil, p(1, 2, 3, 6, 9), {}}, want: p(1, 2, 3, 5, 6, 9)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, mergeSorted(tc.lists, byArchive), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("merged (-want +got):\n%s", diff)
			}
		})
	}
}

func TestJoinOutcome(t *testing.T) {
	lu := func(key string, used int64, scope string) LimitUsage {
		return LimitUsage{Name: key, Hard: 10, Used: used, Scope: scope}
	}
	cases := map[string]struct {
		o, p, want Outcome
	}{
		"into nothing": {
			p:    Outcome{Checkpoints: 2, Bytes: 5, Limits: []LimitUsage{lu("k", 2, "a")}, MaxSize: &LimitUsage{Used: 3, Scope: "a"}},
			want: Outcome{Checkpoints: 2, Bytes: 5, Limits: []LimitUsage{lu("k", 2, "a")}, MaxSize: &LimitUsage{Used: 3, Scope: "a"}},
		},
		"counts add up, each limit keeps the nearest scope, new limits are added": {
			o:    Outcome{Checkpoints: 2, Bytes: 5, Limits: []LimitUsage{lu("k", 2, "b"), lu("m", 4, "b")}},
			p:    Outcome{Checkpoints: 3, Bytes: 1, Limits: []LimitUsage{lu("k", 3, "a"), lu("m", 1, "a"), lu("n", 1, "a")}},
			want: Outcome{Checkpoints: 5, Bytes: 6, Limits: []LimitUsage{lu("k", 3, "a"), lu("m", 4, "b"), lu("n", 1, "a")}},
		},
		"the largest archive stays": {
			o:    Outcome{MaxSize: &LimitUsage{Used: 9, Scope: "b"}},
			p:    Outcome{MaxSize: &LimitUsage{Used: 3, Scope: "a"}},
			want: Outcome{MaxSize: &LimitUsage{Used: 9, Scope: "b"}},
		},
		"lists are appended, to be sorted once every part is in; pending is not": {
			o: Outcome{Blocked: []Block{{Rule: "k"}}, Pods: []ScopeUsage{{Pod: "p"}}},
			p: Outcome{Blocked: []Block{{Rule: "m"}}, Namespaces: []ScopeUsage{{Namespace: "n"}}, Pods: []ScopeUsage{{Pod: "q"}},
				Containers: []ScopeUsage{{Container: "c"}}, Pending: []Prune{{Archive: 1}}},
			want: Outcome{Blocked: []Block{{Rule: "k"}, {Rule: "m"}}, Namespaces: []ScopeUsage{{Namespace: "n"}},
				Pods: []ScopeUsage{{Pod: "p"}, {Pod: "q"}}, Containers: []ScopeUsage{{Container: "c"}}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			o := tc.o
			joinOutcome(&o, &tc.p)
			if diff := cmp.Diff(tc.want, o, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("joined (-want +got):\n%s", diff)
			}
		})
	}
	// The joined MaxSize is a copy: a later part does not write into the part it came from.
	p := Outcome{MaxSize: &LimitUsage{Used: 1, Scope: "a"}}
	var o Outcome
	joinOutcome(&o, &p)
	joinOutcome(&o, &Outcome{MaxSize: &LimitUsage{Used: 5, Scope: "b"}})
	if p.MaxSize.Used != 1 {
		t.Errorf("the first part's MaxSize became %+v", *p.MaxSize)
	}
}

func TestNearer(t *testing.T) {
	cases := map[string]struct {
		l, other, want LimitUsage
	}{
		"more used wins":                       {l: LimitUsage{Used: 1, Scope: "a"}, other: LimitUsage{Used: 2, Scope: "b"}, want: LimitUsage{Used: 2, Scope: "b"}},
		"less used loses":                      {l: LimitUsage{Used: 2, Scope: "b"}, other: LimitUsage{Used: 1, Scope: "a"}, want: LimitUsage{Used: 2, Scope: "b"}},
		"a tie goes to the name sorting first": {l: LimitUsage{Used: 2, Scope: "b"}, other: LimitUsage{Used: 2, Scope: "a"}, want: LimitUsage{Used: 2, Scope: "a"}},
		"the first usage replaces the -1 mark": {l: LimitUsage{Name: "k", Hard: 3, Used: -1}, other: LimitUsage{Scope: "a"}, want: LimitUsage{Name: "k", Hard: 3, Scope: "a"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			l := tc.l
			nearer(&l, tc.other)
			if diff := cmp.Diff(tc.want, l); diff != "" {
				t.Errorf("nearer (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSortBlocks(t *testing.T) {
	blocks := []Block{
		{Rule: "total.checkpoints", Per: PerGroup},
		{Rule: "perPod.storage", Per: PerPod, Scope: "ns/b"},
		{Rule: "perPod.checkpoints", Per: PerPod, Scope: "ns/b"},
		{Rule: "perPod.checkpoints", Per: PerPod, Scope: "ns/a"},
		{Rule: "perContainer.checkpoints", Per: PerContainer, Scope: "ns/z/c"},
	}
	sortBlocks(blocks)
	var got []string
	for _, b := range blocks {
		got = append(got, b.Rule+" "+b.Scope)
	}
	want := []string{"perContainer.checkpoints ns/z/c", "perPod.checkpoints ns/a", "perPod.checkpoints ns/b", "perPod.storage ns/b", "total.checkpoints "}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("narrowest level first, then scope and key (-want +got):\n%s", diff)
	}
}

func TestEarliest(t *testing.T) {
	later := t0.Add(time.Hour)
	cases := map[string]struct{ a, b, want time.Time }{
		"both zero":          {},
		"zero is no time":    {a: time.Time{}, b: later, want: later},
		"zero is no time, b": {a: later, b: time.Time{}, want: later},
		"the earlier":        {a: later, b: t0, want: t0},
		"the earlier, a":     {a: t0, b: later, want: t0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := earliest(tc.a, tc.b); !got.Equal(tc.want) {
				t.Errorf("earliest(%s, %s) = %s, want %s", tc.a, tc.b, got, tc.want)
			}
		})
	}
}

// TestCoupledAmongSeveral checks that one cluster quota's limits.total couples the whole
// set, whichever resource it counts, and that no other limit does.
func TestCoupledAmongSeveral(t *testing.T) {
	cases := map[string]struct {
		cluster *builder.ClusterQuotaBuilder
		want    bool
	}{
		"limits.total.checkpoints":         {cluster: builder.ClusterQuota("all").Total(100, ""), want: true},
		"limits.total.storage":             {cluster: builder.ClusterQuota("all").Total(-1, "1Ti"), want: true},
		"per namespace, pod and container": {cluster: builder.ClusterQuota("all").PerNamespace(9, "1Gi").PerPod(5, "").PerContainer(2, "")},
		"retention rules alone":            {cluster: builder.ClusterQuota("all").MaxAge("24h").MaxCheckpointSize("1Gi")},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var quotas []*policy.Quota
			add := collect(t, &quotas)
			add(policy.FromCheckpointQuota(builder.Quota("q", "shop").Total(3, "1Gi").Obj()))
			add(policy.FromClusterQuota(tc.cluster.Obj()))
			add(policy.FromCheckpointQuota(builder.Quota("r", "team").PodNames("a").Total(1, "").Obj()))
			if got := Coupled(quotas); got != tc.want {
				t.Errorf("Coupled = %v, want %v", got, tc.want)
			}
		})
	}
	if Coupled(nil) {
		t.Error("no quota couples nothing")
	}
}

func TestComputeNothing(t *testing.T) {
	res := Compute(Input{Now: t0})
	if len(res.Prune) != 0 || len(res.Quotas) != 0 || !res.NextExpiry.IsZero() {
		t.Errorf("no archive, no quota: %+v", res)
	}
	res = Compute(Input{Quotas: []Meta{{Name: "q", DryRun: true}}, Now: t0})
	if diff := cmp.Diff([]Outcome{{}}, res.Quotas, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("a quota without archives (-want +got):\n%s", diff)
	}
}
