package quota

import (
	"fmt"
	"math"
	"testing"

	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// governed gives each archive the rules of its container: rules["ns/pod/container"], one
// pointer per container as Resolve gives them.
func governed(archives []Archive, rules map[string]*Rules) []*Rules {
	out := make([]*Rules, len(archives))
	for i := range archives {
		out[i] = rules[archives[i].Scope(PerContainer)]
	}
	return out
}

func limitOf(quota int, key string, lvl Per, r policy.Resource, v int64) Bound {
	return Bound{Quota: quota, Per: lvl, Limit: policy.Limit{Field: &policy.Field{Name: key, Resource: r}, Value: v}}
}

// usageOf is the part of an outcome that report fills.
func usageOf(o Outcome) Outcome {
	return Outcome{Checkpoints: o.Checkpoints, Bytes: o.Bytes, Limits: o.Limits, MaxSize: o.MaxSize,
		Namespaces: o.Namespaces, Pods: o.Pods, Containers: o.Containers}
}

// TestReport checks what each quota reports of its usage: its limits in force with the
// scope nearest each, the archives it governs counted once, the largest archive under its
// maxCheckpointSize, and the scopes nearest their limits.
func TestReport(t *testing.T) {
	const mi = 1 << 20
	two := []Meta{{Name: "q0"}, {Name: "q1"}}
	pinned := archives("ns", "p", "a", 2, mi)
	pinned[0].Pinned, pinned[1].Unreadable = true, true
	var many []Archive
	for i := range MaxScopes + 5 {
		a := archives("ns", fmt.Sprintf("p%02d", i), "a", 1, int64(i+1)*mi)
		many = append(many, a...)
	}
	cases := map[string]struct {
		archives []Archive
		quotas   []Meta
		rules    map[string]*Rules
		want     []Outcome
	}{
		"limits by quota then key, each with the scope nearest it; group limits have no scope": {
			archives: concat(archives("ns", "p", "a", 3, mi), archives("ns", "q", "a", 1, 4*mi)),
			quotas:   two,
			rules: func() map[string]*Rules {
				r := &Rules{Bounds: []Bound{limitOf(0, "perPod.storage", PerPod, policy.ResourceStorage, 10*mi),
					limitOf(0, "perContainer.checkpoints", PerContainer, policy.ResourceCheckpoints, 5),
					limitOf(1, "total.checkpoints", PerGroup, policy.ResourceCheckpoints, 10)}}
				return map[string]*Rules{"ns/p/a": r, "ns/q/a": r}
			}(),
			want: []Outcome{
				{Checkpoints: 4, Bytes: 7 * mi,
					Limits: []LimitUsage{
						{Name: "perContainer.checkpoints", Per: PerContainer, Resource: policy.ResourceCheckpoints, Hard: 5, Used: 3, Scope: "ns/p/a"},
						{Name: "perPod.storage", Per: PerPod, Resource: policy.ResourceStorage, Hard: 10 * mi, Used: 4 * mi, Scope: "ns/q"}},
					Namespaces: []ScopeUsage{{Namespace: "ns", Checkpoints: 4, Bytes: 7 * mi}},
					Pods: []ScopeUsage{{Namespace: "ns", Pod: "q", Checkpoints: 1, Bytes: 4 * mi, Fill: 0.4},
						{Namespace: "ns", Pod: "p", Checkpoints: 3, Bytes: 3 * mi, Fill: 0.3}},
					Containers: []ScopeUsage{{Namespace: "ns", Pod: "p", Container: "a", Checkpoints: 3, Bytes: 3 * mi, Fill: 0.6},
						{Namespace: "ns", Pod: "q", Container: "a", Checkpoints: 1, Bytes: 4 * mi, Fill: 0.2}}},
				{Checkpoints: 4, Bytes: 7 * mi,
					Limits:     []LimitUsage{{Name: "total.checkpoints", Per: PerGroup, Resource: policy.ResourceCheckpoints, Hard: 10, Used: 4}},
					Namespaces: []ScopeUsage{{Namespace: "ns", Checkpoints: 4, Bytes: 7 * mi}},
					Pods: []ScopeUsage{{Namespace: "ns", Pod: "p", Checkpoints: 3, Bytes: 3 * mi},
						{Namespace: "ns", Pod: "q", Checkpoints: 1, Bytes: 4 * mi}},
					Containers: []ScopeUsage{{Namespace: "ns", Pod: "p", Container: "a", Checkpoints: 3, Bytes: 3 * mi},
						{Namespace: "ns", Pod: "q", Container: "a", Checkpoints: 1, Bytes: 4 * mi}}},
			},
		},
		"equal usage: the scope whose name sorts first is the nearest": {
			archives: concat(archives("ns", "b", "x", 2, mi), archives("ns", "a", "x", 2, mi)),
			quotas:   two[:1],
			rules: func() map[string]*Rules {
				r := &Rules{Bounds: []Bound{limitOf(0, "perPod.checkpoints", PerPod, policy.ResourceCheckpoints, 4)}}
				return map[string]*Rules{"ns/a/x": r, "ns/b/x": r}
			}(),
			want: []Outcome{{Checkpoints: 4, Bytes: 4 * mi,
				Limits:     []LimitUsage{{Name: "perPod.checkpoints", Per: PerPod, Resource: policy.ResourceCheckpoints, Hard: 4, Used: 2, Scope: "ns/a"}},
				Namespaces: []ScopeUsage{{Namespace: "ns", Checkpoints: 4, Bytes: 4 * mi}},
				Pods: []ScopeUsage{{Namespace: "ns", Pod: "a", Checkpoints: 2, Bytes: 2 * mi, Fill: 0.5},
					{Namespace: "ns", Pod: "b", Checkpoints: 2, Bytes: 2 * mi, Fill: 0.5}},
				Containers: []ScopeUsage{{Namespace: "ns", Pod: "a", Container: "x", Checkpoints: 2, Bytes: 2 * mi},
					{Namespace: "ns", Pod: "b", Container: "x", Checkpoints: 2, Bytes: 2 * mi}}}},
		},
		"an archive counts once per quota, however many of its rules govern it; pinned and unreadable ones count": {
			archives: pinned,
			quotas:   two[:1],
			rules: map[string]*Rules{"ns/p/a": {Bounds: []Bound{limitOf(0, "perContainer.checkpoints", PerContainer, policy.ResourceCheckpoints, 1),
				limitOf(0, "perPod.checkpoints", PerPod, policy.ResourceCheckpoints, 1)},
				MaxAge: &Retention{Quota: 0, Duration: 1 << 62}, Orphans: &Retention{Quota: 0, Duration: 1 << 62}}},
			want: []Outcome{{Checkpoints: 2, Bytes: 2 * mi,
				Limits: []LimitUsage{{Name: "perContainer.checkpoints", Per: PerContainer, Resource: policy.ResourceCheckpoints, Hard: 1, Used: 2, Scope: "ns/p/a"},
					{Name: "perPod.checkpoints", Per: PerPod, Resource: policy.ResourceCheckpoints, Hard: 1, Used: 2, Scope: "ns/p"}},
				Namespaces: []ScopeUsage{{Namespace: "ns", Checkpoints: 2, Bytes: 2 * mi}},
				Pods:       []ScopeUsage{{Namespace: "ns", Pod: "p", Checkpoints: 2, Bytes: 2 * mi, Fill: 2}},
				Containers: []ScopeUsage{{Namespace: "ns", Pod: "p", Container: "a", Checkpoints: 2, Bytes: 2 * mi, Fill: 2}}}},
		},
		"a retention rule alone counts the archives; maxCheckpointSize reports the largest archive and its container": {
			archives: concat(archives("ns", "p", "a", 2, mi), archives("ns", "p", "b", 1, 3*mi), archives("other", "p", "a", 1, 3*mi)),
			quotas:   two,
			rules: func() map[string]*Rules {
				size := &Rules{MaxSize: &Retention{Quota: 1, Value: 5 * mi}}
				return map[string]*Rules{"ns/p/a": size, "ns/p/b": size, "other/p/a": size}
			}(),
			want: []Outcome{{}, {Checkpoints: 4, Bytes: 8 * mi,
				MaxSize:    &LimitUsage{Name: "maxCheckpointSize", Per: PerContainer, Resource: policy.ResourceStorage, Hard: 5 * mi, Used: 3 * mi, Scope: "ns/p/b"},
				Namespaces: []ScopeUsage{{Namespace: "ns", Checkpoints: 3, Bytes: 5 * mi}, {Namespace: "other", Checkpoints: 1, Bytes: 3 * mi}},
				Pods:       []ScopeUsage{{Namespace: "ns", Pod: "p", Checkpoints: 3, Bytes: 5 * mi}, {Namespace: "other", Pod: "p", Checkpoints: 1, Bytes: 3 * mi}},
				Containers: []ScopeUsage{{Namespace: "ns", Pod: "p", Container: "a", Checkpoints: 2, Bytes: 2 * mi},
					{Namespace: "ns", Pod: "p", Container: "b", Checkpoints: 1, Bytes: 3 * mi},
					{Namespace: "other", Pod: "p", Container: "a", Checkpoints: 1, Bytes: 3 * mi}}}},
		},
		"a quota that governs no archive reports nothing": {
			archives: archives("ns", "p", "a", 2, mi),
			quotas:   two,
			rules:    map[string]*Rules{"ns/p/a": {Bounds: []Bound{limitOf(1, "perPod.checkpoints", PerPod, policy.ResourceCheckpoints, 5)}}},
			want: []Outcome{{}, {Checkpoints: 2, Bytes: 2 * mi,
				Limits:     []LimitUsage{{Name: "perPod.checkpoints", Per: PerPod, Resource: policy.ResourceCheckpoints, Hard: 5, Used: 2, Scope: "ns/p"}},
				Namespaces: []ScopeUsage{{Namespace: "ns", Checkpoints: 2, Bytes: 2 * mi}},
				Pods:       []ScopeUsage{{Namespace: "ns", Pod: "p", Checkpoints: 2, Bytes: 2 * mi, Fill: 0.4}},
				Containers: []ScopeUsage{{Namespace: "ns", Pod: "p", Container: "a", Checkpoints: 2, Bytes: 2 * mi}}}},
		},
		"no archives: nothing to report": {
			quotas: two,
			want:   []Outcome{{}, {}},
		},
		"at most MaxScopes scopes, the fullest and then the largest": {
			archives: many,
			quotas:   two[:1],
			rules: func() map[string]*Rules {
				r := &Rules{Bounds: []Bound{limitOf(0, "perPod.checkpoints", PerPod, policy.ResourceCheckpoints, 1)}}
				out := map[string]*Rules{}
				for _, a := range many {
					out[a.Scope(PerContainer)] = r
				}
				return out
			}(),
			want: func() []Outcome {
				o := Outcome{Checkpoints: int64(len(many)),
					Limits: []LimitUsage{{Name: "perPod.checkpoints", Per: PerPod, Resource: policy.ResourceCheckpoints, Hard: 1, Used: 1, Scope: "ns/p00"}}}
				for _, a := range many {
					o.Bytes += a.Size
				}
				o.Namespaces = []ScopeUsage{{Namespace: "ns", Checkpoints: o.Checkpoints, Bytes: o.Bytes}}
				for i := len(many) - 1; i >= len(many)-MaxScopes; i-- {
					a := many[i]
					o.Pods = append(o.Pods, ScopeUsage{Namespace: "ns", Pod: a.Pod, Checkpoints: 1, Bytes: a.Size, Fill: 1})
					o.Containers = append(o.Containers, ScopeUsage{Namespace: "ns", Pod: a.Pod, Container: "a", Checkpoints: 1, Bytes: a.Size})
				}
				return []Outcome{o}
			}(),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := Input{Archives: tc.archives, Quotas: tc.quotas, Rules: governed(tc.archives, tc.rules), Now: t0}
			res := Compute(in)
			var got []Outcome
			for _, o := range res.Quotas {
				got = append(got, usageOf(o))
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("usage (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRatio(t *testing.T) {
	cases := map[string]struct {
		used, hard int64
		want       float64
	}{
		"empty under a limit of 0":   {used: 0, hard: 0, want: 0},
		"anything over a limit of 0": {used: 1, hard: 0, want: math.Inf(1)},
		"a quarter":                  {used: 1, hard: 4, want: 0.25},
		"over the limit":             {used: 6, hard: 4, want: 1.5},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := ratio(tc.used, tc.hard); got != tc.want {
				t.Errorf("ratio(%d, %d) = %v, want %v", tc.used, tc.hard, got, tc.want)
			}
		})
	}
}

// TestNearestOf checks the order of the scope lists: fullest, then most archives, then
// most bytes, then by name, so that lists sorted apart and joined sort alike.
func TestNearestOf(t *testing.T) {
	su := func(ns, pod string, n, b int64, fill float64) ScopeUsage {
		return ScopeUsage{Namespace: ns, Pod: pod, Checkpoints: n, Bytes: b, Fill: fill}
	}
	cases := map[string]struct {
		in, want []ScopeUsage
	}{
		"nothing":               {},
		"fullest first":         {in: []ScopeUsage{su("a", "p", 9, 9, 0.5), su("a", "q", 1, 1, 2)}, want: []ScopeUsage{su("a", "q", 1, 1, 2), su("a", "p", 9, 9, 0.5)}},
		"then most archives":    {in: []ScopeUsage{su("a", "p", 1, 9, 1), su("a", "q", 2, 1, 1)}, want: []ScopeUsage{su("a", "q", 2, 1, 1), su("a", "p", 1, 9, 1)}},
		"then most bytes":       {in: []ScopeUsage{su("a", "p", 1, 1, 1), su("a", "q", 1, 2, 1)}, want: []ScopeUsage{su("a", "q", 1, 2, 1), su("a", "p", 1, 1, 1)}},
		"then by namespace":     {in: []ScopeUsage{su("b", "p", 1, 1, 1), su("a", "p", 1, 1, 1)}, want: []ScopeUsage{su("a", "p", 1, 1, 1), su("b", "p", 1, 1, 1)}},
		"then by pod":           {in: []ScopeUsage{su("a", "q", 1, 1, 1), su("a", "p", 1, 1, 1)}, want: []ScopeUsage{su("a", "p", 1, 1, 1), su("a", "q", 1, 1, 1)}},
		"an infinite fill wins": {in: []ScopeUsage{su("a", "p", 5, 5, 3), su("a", "q", 1, 1, math.Inf(1))}, want: []ScopeUsage{su("a", "q", 1, 1, math.Inf(1)), su("a", "p", 5, 5, 3)}},
		"then by container": {
			in:   []ScopeUsage{{Namespace: "a", Pod: "p", Container: "y"}, {Namespace: "a", Pod: "p", Container: "x"}},
			want: []ScopeUsage{{Namespace: "a", Pod: "p", Container: "x"}, {Namespace: "a", Pod: "p", Container: "y"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, nearestOf(tc.in)); diff != "" {
				t.Errorf("order (-want +got):\n%s", diff)
			}
		})
	}
	var many []ScopeUsage
	for i := range MaxScopes + 3 {
		many = append(many, su("a", fmt.Sprintf("p%02d", i), int64(i), 0, 0))
	}
	got := nearestOf(many)
	if len(got) != MaxScopes || got[0].Pod != fmt.Sprintf("p%02d", MaxScopes+2) {
		t.Errorf("got %d scopes starting with %s, want the %d with the most archives", len(got), got[0].Pod, MaxScopes)
	}
}
