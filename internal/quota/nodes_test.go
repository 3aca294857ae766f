package quota

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// onNode moves archives to node.
func onNode(node string, as []Archive) []Archive {
	for i := range as {
		as[i].Node = node
	}
	return as
}

func dirsOf(as []Archive, dir string) []string {
	out := make([]string, len(as))
	for i := range out {
		out[i] = dir
	}
	return out
}

func TestComputeNodes(t *testing.T) {
	const mi = 1 << 20
	two := []Meta{{Name: "ClusterCheckpointQuota a"}, {Name: "ClusterCheckpointQuota b"}}
	// Node A: shop's archives at minutes 0..2, team's at 0..2: oldest first across namespaces.
	mixed := func() []Archive {
		return concat(onNode("node-a", archives("shop", "p", "c", 3, 2*mi)),
			onNode("node-a", archives("team", "q", "c", 3, 2*mi)),
			onNode("node-b", archives("shop", "r", "c", 3, 2*mi)))
	}
	cases := map[string]struct {
		archives    []Archive
		pinned      []string
		nodes       map[string]NodeReport
		checkpoints []NodeLimit
		storage     []NodeLimit
		floors      []Floor
		active      []bool
		wantPrune   []string
		wantKeys    []string
		wantBlocked []NodeBlock
	}{
		"per-node storage prunes only the node over, oldest first across namespaces": {
			archives:  mixed(),
			storage:   []NodeLimit{{Quota: 0, Value: 7 * mi}},
			wantPrune: []string{"p-c-0", "q-c-0", "p-c-1"},
			wantKeys:  []string{KeyNodeStorage, KeyNodeStorage, KeyNodeStorage},
		},
		"the strictest per-node count of several quotas wins": {
			archives:    mixed(),
			checkpoints: []NodeLimit{{Quota: 0, Value: 5}, {Quota: 1, Value: 4}},
			wantPrune:   []string{"p-c-0", "q-c-0"},
			wantKeys:    []string{KeyNodeCheckpoints, KeyNodeCheckpoints},
		},
		"a DryRun quota's limit is left out": {
			archives:    mixed(),
			checkpoints: []NodeLimit{{Quota: 0, Value: 5}, {Quota: 1, Value: 1}},
			active:      []bool{true, false},
			wantPrune:   []string{"p-c-0"},
			wantKeys:    []string{KeyNodeCheckpoints},
		},
		"unattributed archives count against the node and are never pruned": {
			archives:  mixed(),
			nodes:     map[string]NodeReport{"node-b": {UnattributedArchives: 2, UnattributedBytes: 8 * mi}},
			storage:   []NodeLimit{{Quota: 0, Value: 12 * mi}},
			wantPrune: []string{"r-c-0"},
			wantKeys:  []string{KeyNodeStorage},
		},
		"pins block a per-node limit and say how far it stays over": {
			archives:    onNode("node-a", archives("shop", "p", "c", 3, mi)),
			pinned:      []string{"p-c-0", "p-c-1", "p-c-2"},
			checkpoints: []NodeLimit{{Quota: 0, Value: 1}},
			wantBlocked: []NodeBlock{{Quota: 0, Rule: KeyNodeCheckpoints, Node: "node-a", Missing: 2, Pinned: 3, PinnedBytes: 3 * mi}},
		},
		"a floor in bytes prunes until the freed bytes cover the deficit": {
			archives: mixed(),
			// 20Mi disk, 12Mi archives, 4Mi other files, 4Mi free: 3Mi missing for 7Mi.
			nodes:     map[string]NodeReport{"node-a": {Filesystems: []Filesystem{{Dirs: []string{"/ckpt"}, Capacity: 20 * mi, Free: 4 * mi, ArchiveBytes: 12 * mi}}}},
			floors:    []Floor{{Quota: 0, Bytes: 7 * mi}},
			wantPrune: []string{"p-c-0", "q-c-0"},
			wantKeys:  []string{KeyNodeMinFree, KeyNodeMinFree},
		},
		"a floor in percent, the larger of two floors wins": {
			archives: mixed(),
			nodes:    map[string]NodeReport{"node-a": {Filesystems: []Filesystem{{Dirs: []string{"/ckpt"}, Capacity: 20 * mi, Free: 4 * mi, ArchiveBytes: 12 * mi}}}},
			// 50% of 20Mi = 10Mi beats 5Mi: 6Mi missing.
			floors:    []Floor{{Quota: 0, Bytes: 5 * mi}, {Quota: 1, Percent: 50, IsPercent: true}},
			wantPrune: []string{"p-c-0", "q-c-0", "p-c-1"},
			wantKeys:  []string{KeyNodeMinFree, KeyNodeMinFree, KeyNodeMinFree},
		},
		"archives pruned since the report count as freed": {
			archives:  mixed()[1:], // p-c-0 is gone from the Checkpoints; the report still has it
			nodes:     map[string]NodeReport{"node-a": {Filesystems: []Filesystem{{Dirs: []string{"/ckpt"}, Capacity: 20 * mi, Free: 4 * mi, ArchiveBytes: 12 * mi}}}},
			floors:    []Floor{{Quota: 0, Bytes: 7 * mi}},
			wantPrune: []string{"q-c-0"},
			wantKeys:  []string{KeyNodeMinFree},
		},
		"a floor that pins and other files keep from holding is reported with the bytes missing": {
			archives:  onNode("node-a", archives("shop", "p", "c", 3, mi)),
			pinned:    []string{"p-c-1", "p-c-2"},
			nodes:     map[string]NodeReport{"node-a": {Filesystems: []Filesystem{{Dirs: []string{"/ckpt"}, Capacity: 10 * mi, Free: 1 * mi, ArchiveBytes: 3 * mi}}}},
			floors:    []Floor{{Quota: 0, Bytes: 5 * mi}},
			wantPrune: []string{"p-c-0"},
			wantKeys:  []string{KeyNodeMinFree},
			wantBlocked: []NodeBlock{{Quota: 0, Rule: KeyNodeMinFree, Node: "node-a", Missing: 3 * mi,
				Pinned: 2, PinnedBytes: 2 * mi, OtherBytes: 6 * mi}},
		},
		"a node that reported nothing has no floor enforced": {
			archives: mixed(),
			floors:   []Floor{{Quota: 0, Percent: 100, IsPercent: true}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			pinned := map[string]bool{}
			for _, p := range tc.pinned {
				pinned[p] = true
			}
			for i := range tc.archives {
				tc.archives[i].Pinned = pinned[tc.archives[i].Name]
			}
			active := tc.active
			if active == nil {
				active = []bool{true, true}
			}
			in := NodeInput{Archives: pointersTo(tc.archives), Dirs: dirsOf(tc.archives, "/ckpt"), Nodes: tc.nodes, Quotas: two,
				Checkpoints: tc.checkpoints, Storage: tc.storage, Floors: tc.floors}
			out := ComputeNodes(in, make([]bool, len(tc.archives)), active)
			var got, keys []string
			for _, p := range out.Prune {
				got = append(got, tc.archives[p.Archive].Name)
				keys = append(keys, p.Rule)
				if p.Scope != "node "+tc.archives[p.Archive].Node {
					t.Errorf("scope %q for an archive of %s", p.Scope, tc.archives[p.Archive].Node)
				}
			}
			if diff := cmp.Diff(tc.wantPrune, got); diff != "" {
				t.Errorf("pruned (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantKeys, keys); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantBlocked, out.Blocked); diff != "" {
				t.Errorf("blocked (-want +got):\n%s", diff)
			}
		})
	}
}

func TestComputeNodesLeavesWhatIsMarkedAlready(t *testing.T) {
	const mi = 1 << 20
	as := onNode("node-a", archives("shop", "p", "c", 4, mi))
	marked := []bool{false, true, false, false} // another rule prunes p-c-1
	out := ComputeNodes(NodeInput{Archives: pointersTo(as), Dirs: dirsOf(as, "/ckpt"), Quotas: []Meta{{Name: "q"}},
		Checkpoints: []NodeLimit{{Quota: 0, Value: 2}}}, marked, []bool{true})
	var got []string
	for _, p := range out.Prune {
		got = append(got, as[p.Archive].Name)
	}
	if diff := cmp.Diff([]string{"p-c-0"}, got); diff != "" {
		t.Errorf("pruned (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]NodeUsage{{Node: "node-a", Checkpoints: 3, Bytes: 3 * mi, Fill: 1.5}}, out.Nodes); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
}

// pointersTo points at each of archives, as Merge gives them.
func pointersTo(archives []Archive) []*Archive {
	out := make([]*Archive, len(archives))
	for i := range archives {
		out[i] = &archives[i]
	}
	return out
}
