package quota

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestStrictestLimit(t *testing.T) {
	quotas := []Meta{{Name: "ClusterCheckpointQuota b"}, {Name: "ClusterCheckpointQuota a"}, {Name: "ClusterCheckpointQuota c"}}
	cases := map[string]struct {
		limits []NodeLimit
		active []bool
		want   int
	}{
		"no limit":     {active: []bool{true, true, true}, want: -1},
		"the smallest": {limits: []NodeLimit{{0, 5}, {1, 3}, {2, 4}}, active: []bool{true, true, true}, want: 1},
		"a tie goes to the quota whose name sorts first": {limits: []NodeLimit{{0, 3}, {1, 3}}, active: []bool{true, true, true}, want: 1},
		"an inactive quota's limit is left out":          {limits: []NodeLimit{{0, 5}, {1, 3}}, active: []bool{true, false, true}, want: 0},
		"none active":                                    {limits: []NodeLimit{{0, 5}}, active: []bool{false, true, true}, want: -1},
		"a limit of 0 is the strictest":                  {limits: []NodeLimit{{2, 1}, {0, 0}}, active: []bool{true, true, true}, want: 1},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := StrictestLimit(tc.limits, quotas, tc.active); got != tc.want {
				t.Errorf("StrictestLimit = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestFloorRequired(t *testing.T) {
	cases := map[string]struct {
		floor    Floor
		capacity int64
		want     int64
	}{
		"bytes, whatever the capacity":       {floor: Floor{Bytes: 500}, capacity: 100, want: 500},
		"percent of the capacity":            {floor: Floor{Percent: 10, IsPercent: true}, capacity: 1000, want: 100},
		"percent rounds up, never asks less": {floor: Floor{Percent: 10, IsPercent: true}, capacity: 1001, want: 101},
		"0%":                                 {floor: Floor{IsPercent: true}, capacity: 1000, want: 0},
		"100%":                               {floor: Floor{Percent: 100, IsPercent: true}, capacity: 1000, want: 1000},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := tc.floor.required(tc.capacity); got != tc.want {
				t.Errorf("required(%d) = %d, want %d", tc.capacity, got, tc.want)
			}
		})
	}
}

func TestParseMinFree(t *testing.T) {
	cases := map[string]struct {
		v      intstr.IntOrString
		want   Floor
		wantOK bool
	}{
		"a percentage":                    {v: intstr.FromString("15%"), want: Floor{Percent: 15, IsPercent: true}, wantOK: true},
		"0%":                              {v: intstr.FromString("0%"), want: Floor{IsPercent: true}, wantOK: true},
		"100%":                            {v: intstr.FromString("100%"), want: Floor{Percent: 100, IsPercent: true}, wantOK: true},
		"over 100%":                       {v: intstr.FromString("101%")},
		"a negative percentage":           {v: intstr.FromString("-1%")},
		"a fraction of a percent":         {v: intstr.FromString("1.5%")},
		"bytes as a quantity":             {v: intstr.FromString("10Gi"), want: Floor{Bytes: 10 << 30}, wantOK: true},
		"decimal bytes":                   {v: intstr.FromString("500M"), want: Floor{Bytes: 500_000_000}, wantOK: true},
		"a negative quantity":             {v: intstr.FromString("-1Gi")},
		"not a quantity":                  {v: intstr.FromString("lots")},
		"a bare number is neither":        {v: intstr.FromInt32(10)},
		"a percent sign and nothing else": {v: intstr.FromString("%")},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, ok := ParseMinFree(tc.v)
			if ok != tc.wantOK || got != tc.want {
				t.Errorf("ParseMinFree(%v) = %+v, %v; want %+v, %v", tc.v, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// TestNodeReport checks what the node rules report of each node: its archives and bytes
// (unattributed ones included), how full it is against the strictest rules, the free space
// and floor of its fullest filesystem, nodes that reported but hold no Checkpoint, and the
// order and bound of the list.
func TestNodeReport(t *testing.T) {
	const mi = 1 << 20
	quotas := []Meta{{Name: "ClusterCheckpointQuota a"}, {Name: "ClusterCheckpointQuota b"}}
	fs := func(dir string, capacity, free, archives int64) Filesystem {
		return Filesystem{Dirs: []string{dir}, Capacity: capacity, Free: free, ArchiveBytes: archives}
	}
	cases := map[string]struct {
		archives    []Archive
		nodes       map[string]NodeReport
		checkpoints []NodeLimit
		storage     []NodeLimit
		floors      []Floor
		want        []NodeUsage
		wantWins    map[int]int
	}{
		"no rule: usage alone, unattributed archives included": {
			archives: onNode("n-1", archives("shop", "p", "c", 2, mi)),
			nodes:    map[string]NodeReport{"n-1": {UnattributedArchives: 1, UnattributedBytes: 5 * mi}},
			want:     []NodeUsage{{Node: "n-1", Checkpoints: 3, Bytes: 7 * mi}},
		},
		"fill is the fuller of count and storage": {
			archives:    concat(onNode("n-1", archives("shop", "p", "c", 2, 4*mi)), onNode("n-2", archives("shop", "q", "c", 3, mi))),
			checkpoints: []NodeLimit{{Quota: 0, Value: 4}},
			storage:     []NodeLimit{{Quota: 1, Value: 16 * mi}},
			want: []NodeUsage{{Node: "n-2", Checkpoints: 3, Bytes: 3 * mi, Fill: 0.75},
				{Node: "n-1", Checkpoints: 2, Bytes: 8 * mi, Fill: 0.5}},
		},
		"a limit of 0 on an empty node is not full": {
			nodes:       map[string]NodeReport{"n-1": {}},
			checkpoints: []NodeLimit{{Quota: 0, Value: 0}},
			want:        []NodeUsage{{Node: "n-1"}},
		},
		"the fullest filesystem against the floor, and which floor is strictest where": {
			archives: onNode("n-1", archives("shop", "p", "c", 1, mi)),
			// /a: 10% of 100Mi = 10Mi asked, 50Mi free; /b: 10% of 20Mi = 2Mi < 4Mi, 4Mi free.
			nodes:    map[string]NodeReport{"n-1": {Filesystems: []Filesystem{fs("/a", 100*mi, 50*mi, 0), fs("/b", 20*mi, 4*mi, 0)}}},
			floors:   []Floor{{Quota: 0, Percent: 10, IsPercent: true}, {Quota: 1, Bytes: 4 * mi}},
			want:     []NodeUsage{{Node: "n-1", Checkpoints: 1, Bytes: mi, Free: 4 * mi, MinFree: 4 * mi, HasFree: true, Fill: 1}},
			wantWins: map[int]int{0: 1, 1: 1},
		},
		"a report without a floor shows the free space alone": {
			nodes: map[string]NodeReport{"n-1": {Filesystems: []Filesystem{fs("/a", 100*mi, 30*mi, 0)}}},
			want:  []NodeUsage{{Node: "n-1", Free: 30 * mi, HasFree: true}},
		},
		"free space never above the capacity, never below 0": {
			nodes: map[string]NodeReport{"full": {Filesystems: []Filesystem{fs("/a", 10*mi, 0, 0)}},
				"odd": {Filesystems: []Filesystem{fs("/a", 10*mi, 8*mi, 6*mi)}}},
			want: []NodeUsage{{Node: "full", HasFree: true}, {Node: "odd", Free: 10 * mi, HasFree: true}},
		},
		"fullest first (then by name), at most MaxScopes": {
			archives: func() []Archive {
				var out []Archive
				for i := range MaxScopes + 2 {
					out = append(out, onNode(fmt.Sprintf("n-%02d", i), archives("shop", fmt.Sprintf("p%02d", i), "c", 1+i%5, mi))...)
				}
				return out
			}(),
			checkpoints: []NodeLimit{{Quota: 0, Value: 10}},
			want: func() []NodeUsage {
				var out []NodeUsage
				for c := int64(5); c >= 1; c-- {
					for i := range MaxScopes + 2 {
						if int64(1+i%5) == c && len(out) < MaxScopes {
							out = append(out, NodeUsage{Node: fmt.Sprintf("n-%02d", i), Checkpoints: c, Bytes: c * mi, Fill: float64(c) / 10})
						}
					}
				}
				return out
			}(),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := NodeInput{Archives: pointersTo(tc.archives), Dirs: dirsOf(tc.archives, "/a"), Nodes: tc.nodes, Quotas: quotas,
				Checkpoints: tc.checkpoints, Storage: tc.storage, Floors: tc.floors}
			out := ComputeNodes(in, make([]bool, len(tc.archives)), []bool{true, true})
			if diff := cmp.Diff(tc.want, out.Nodes, cmpopts.EquateEmpty(), cmpopts.EquateApprox(0, 1e-9)); diff != "" {
				t.Errorf("nodes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantWins, out.FloorWins, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("floor wins (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNodeBlocks checks what a node rule that stays over reports: how far, and what is
// left that pruning may not touch, on the filesystem of the floor only.
func TestNodeBlocks(t *testing.T) {
	const mi = 1 << 20
	quotas := []Meta{{Name: "ClusterCheckpointQuota a"}}
	as := onNode("n-1", archives("shop", "p", "c", 4, mi))
	as[0].Unreadable, as[1].Pinned = true, true
	dirs := []string{"/a", "/a", "/b", "/b"}
	cases := map[string]struct {
		nodes       map[string]NodeReport
		checkpoints []NodeLimit
		storage     []NodeLimit
		floors      []Floor
		wantPrune   []string
		want        []NodeBlock
	}{
		"a count limit: unreadable, pinned and unattributed archives are what is left": {
			nodes:       map[string]NodeReport{"n-1": {UnattributedArchives: 2, UnattributedBytes: 3 * mi}},
			checkpoints: []NodeLimit{{Quota: 0, Value: 1}},
			wantPrune:   []string{"p-c-2", "p-c-3"},
			want: []NodeBlock{{Rule: KeyNodeCheckpoints, Node: "n-1", Missing: 3, Pinned: 1, PinnedBytes: mi,
				Unreadable: 1, UnreadableBytes: mi, Unattributed: 2, UnattributedBytes: 3 * mi}},
		},
		"a storage limit says the bytes missing": {
			storage:   []NodeLimit{{Quota: 0, Value: mi}},
			wantPrune: []string{"p-c-2", "p-c-3"},
			want:      []NodeBlock{{Rule: KeyNodeStorage, Node: "n-1", Missing: mi, Pinned: 1, PinnedBytes: mi, Unreadable: 1, UnreadableBytes: mi}},
		},
		"a floor prunes and counts on its own filesystem only": {
			// /a holds the unreadable and the pinned archive, 2Mi, and 1Mi free of 10Mi: 7Mi of other files.
			nodes: map[string]NodeReport{"n-1": {Filesystems: []Filesystem{
				{Dirs: []string{"/a"}, Capacity: 10 * mi, Free: mi, ArchiveBytes: 2 * mi, UnattributedBytes: 0},
				{Dirs: []string{"/b"}, Capacity: 10 * mi, Free: 8 * mi, ArchiveBytes: 2 * mi}}}},
			floors: []Floor{{Quota: 0, Bytes: 3 * mi}},
			want: []NodeBlock{{Rule: KeyNodeMinFree, Node: "n-1", Missing: 2 * mi, Pinned: 1, PinnedBytes: mi,
				Unreadable: 1, UnreadableBytes: mi, OtherBytes: 7 * mi}},
		},
		"within every rule: no block": {
			checkpoints: []NodeLimit{{Quota: 0, Value: 4}},
			storage:     []NodeLimit{{Quota: 0, Value: 4 * mi}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := NodeInput{Archives: pointersTo(as), Dirs: dirs, Nodes: tc.nodes, Quotas: quotas,
				Checkpoints: tc.checkpoints, Storage: tc.storage, Floors: tc.floors}
			out := ComputeNodes(in, make([]bool, len(as)), []bool{true})
			var pruned []string
			for _, p := range out.Prune {
				pruned = append(pruned, as[p.Archive].Name)
			}
			if diff := cmp.Diff(tc.wantPrune, pruned); diff != "" {
				t.Errorf("pruned (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, out.Blocked); diff != "" {
				t.Errorf("blocked (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNodeRuleIndexes checks which rule of several each node outcome names as in force.
func TestNodeRuleIndexes(t *testing.T) {
	quotas := []Meta{{Name: "ClusterCheckpointQuota a"}, {Name: "ClusterCheckpointQuota b"}}
	in := NodeInput{Quotas: quotas, Checkpoints: []NodeLimit{{0, 9}, {1, 4}}, Storage: []NodeLimit{{1, 1 << 30}}}
	out := ComputeNodes(in, nil, []bool{true, true})
	if out.Checkpoints != 1 || out.Storage != 0 {
		t.Errorf("rules in force: checkpoints %d, storage %d; want 1 and 0", out.Checkpoints, out.Storage)
	}
	out = ComputeNodes(in, nil, []bool{true, false})
	if out.Checkpoints != 0 || out.Storage != -1 {
		t.Errorf("with b DryRun: checkpoints %d, storage %d; want 0 and -1", out.Checkpoints, out.Storage)
	}
	if len(out.Nodes) != 0 || len(out.Prune) != 0 || len(out.Blocked) != 0 {
		t.Errorf("no node: got %+v", out)
	}
}

// TestNodeFloors checks the free-space floors filesystem by filesystem: each prunes the
// oldest archives of its own directories until its deficit is covered, counting what
// other rules prune already as freed, with the strictest floor of the active quotas.
func TestNodeFloors(t *testing.T) {
	const mi = 1 << 20
	quotas := []Meta{{Name: "ClusterCheckpointQuota a"}, {Name: "ClusterCheckpointQuota b"}}
	// Two filesystems of 10Mi on n-1: /a holds p's three archives, /b q's three, 1Mi each;
	// each has 6Mi of other files and 1Mi free.
	as := onNode("n-1", concat(archives("shop", "p", "c", 3, mi), archives("shop", "q", "c", 3, mi)))
	dirs := []string{"/a", "/a", "/a", "/b", "/b", "/b"}
	report := NodeReport{Filesystems: []Filesystem{
		{Dirs: []string{"/a"}, Capacity: 10 * mi, Free: mi, ArchiveBytes: 3 * mi},
		{Dirs: []string{"/b"}, Capacity: 10 * mi, Free: mi, ArchiveBytes: 3 * mi}}}
	cases := map[string]struct {
		report NodeReport
		floors []Floor
		active []bool
		marked []int
		want   []string
	}{
		"each filesystem covers its own deficit": {
			report: report, floors: []Floor{{Quota: 0, Bytes: 3 * mi}},
			want: []string{"p-c-0", "p-c-1", "q-c-0", "q-c-1"},
		},
		"the strictest active floor: 30% of 10Mi is 3Mi": {
			report: report, floors: []Floor{{Quota: 0, Bytes: 2 * mi}, {Quota: 1, Percent: 30, IsPercent: true}},
			want: []string{"p-c-0", "p-c-1", "q-c-0", "q-c-1"},
		},
		"a DryRun quota's floor is left out": {
			report: report, floors: []Floor{{Quota: 0, Bytes: 2 * mi}, {Quota: 1, Percent: 30, IsPercent: true}},
			active: []bool{true, false},
			want:   []string{"p-c-0", "q-c-0"},
		},
		"what another rule prunes counts as freed": {
			report: report, floors: []Floor{{Quota: 0, Bytes: 3 * mi}},
			marked: []int{0, 2},
			want:   []string{"q-c-0", "q-c-1"},
		},
		"unattributed archives on a filesystem use space that nothing prunes": {
			report: NodeReport{Filesystems: []Filesystem{
				{Dirs: []string{"/a"}, Capacity: 10 * mi, Free: 3 * mi, ArchiveBytes: 5 * mi, UnattributedBytes: 2 * mi}}},
			// 5Mi of archives, 2Mi of them without a Checkpoint, 3Mi free: 4Mi asked takes
			// p's oldest archive, and the unattributed ones stay.
			floors: []Floor{{Quota: 0, Bytes: 4 * mi}},
			want:   []string{"p-c-0"},
		},
		"a floor of 0 prunes nothing": {
			report: report, floors: []Floor{{Quota: 0, IsPercent: true}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			active := tc.active
			if active == nil {
				active = []bool{true, true}
			}
			marked := make([]bool, len(as))
			for _, i := range tc.marked {
				marked[i] = true
			}
			in := NodeInput{Archives: pointersTo(as), Dirs: dirs, Nodes: map[string]NodeReport{"n-1": tc.report}, Quotas: quotas, Floors: tc.floors}
			out := ComputeNodes(in, marked, active)
			var pruned []string
			for _, p := range out.Prune {
				pruned = append(pruned, as[p.Archive].Name)
				if p.Rule != KeyNodeMinFree || p.Scope != "node n-1" {
					t.Errorf("%s pruned by %s over %s, want %s over node n-1", as[p.Archive].Name, p.Rule, p.Scope, KeyNodeMinFree)
				}
			}
			if diff := cmp.Diff(tc.want, pruned); diff != "" {
				t.Errorf("pruned (-want +got):\n%s", diff)
			}
			if len(out.Blocked) != 0 {
				t.Errorf("blocked: %+v", out.Blocked)
			}
		})
	}
}

// TestNodeRulesPruneUnknownAgeLast checks that a node rule, like every limit, takes an
// archive of unknown age for the newest: it goes last, after every archive whose age is
// known, whatever its namespace.
func TestNodeRulesPruneUnknownAgeLast(t *testing.T) {
	as := onNode("n-1", concat(archives("shop", "p", "c", 2, 1), archives("team", "q", "c", 2, 1)))
	as[0].CheckpointTime = time.Time{}
	in := NodeInput{Archives: pointersTo(as), Dirs: dirsOf(as, "/a"), Quotas: []Meta{{Name: "q"}},
		Checkpoints: []NodeLimit{{Quota: 0, Value: 0}}}
	out := ComputeNodes(in, make([]bool, len(as)), []bool{true})
	var pruned []string
	for _, p := range out.Prune {
		pruned = append(pruned, as[p.Archive].Namespace+"/"+as[p.Archive].Name)
	}
	want := []string{"team/q-c-0", "shop/p-c-1", "team/q-c-1", "shop/p-c-0"}
	if diff := cmp.Diff(want, pruned); diff != "" {
		t.Errorf("pruned (-want +got):\n%s", diff)
	}
}
