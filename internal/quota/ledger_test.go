package quota

import (
	"testing"

	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/google/go-cmp/cmp"
)

// groupOf is a ledger group as a test writes it: the limit's quota and key, the scope, the
// usage and the members by name, oldest first.
type groupOf struct {
	Quota   int
	Key     string
	Scope   string
	Used    int64
	Members []string
}

// TestLedgerGroups checks the ledger that Compute builds before it prunes: one group per
// limit and scope with the archives it counts, oldest first; the archives of each
// container as one subject, even when several containers share one Rules value; and the
// groups in the order pruning visits them, narrowest level first.
func TestLedgerGroups(t *testing.T) {
	const mi = 1 << 20
	cases := map[string]struct {
		archives []Archive
		rules    map[string]*Rules
		// shared gives every archive one Rules value, as rules alike across containers are.
		shared       *Rules
		wantGroups   []groupOf
		wantSubjects int
		wantByLevel  []string
	}{
		"one group per scope of each limit, its archives oldest first": {
			archives: concat(at(archives("ns", "p", "a", 2, mi), 0, -2), at(archives("ns", "p", "b", 1, 2*mi), -1)),
			shared: &Rules{Bounds: []Bound{limitOf(0, "perContainer.checkpoints", PerContainer, policy.ResourceCheckpoints, 1),
				limitOf(0, "perPod.storage", PerPod, policy.ResourceStorage, 5*mi)}},
			wantGroups: []groupOf{
				{Key: "perContainer.checkpoints", Scope: "ns/p/a", Used: 2, Members: []string{"p-a-1", "p-a-0"}},
				{Key: "perPod.storage", Scope: "ns/p", Used: 4 * mi, Members: []string{"p-a-1", "p-b-0", "p-a-0"}},
				{Key: "perContainer.checkpoints", Scope: "ns/p/b", Used: 1, Members: []string{"p-b-0"}},
			},
			wantSubjects: 2,
			wantByLevel:  []string{"perContainer.checkpoints ns/p/a", "perContainer.checkpoints ns/p/b", "perPod.storage ns/p"},
		},
		"a group limit has one group for every archive it governs, whatever their scopes": {
			archives: concat(archives("ns", "p", "a", 1, mi), archives("other", "q", "b", 1, mi)),
			shared:   &Rules{Bounds: []Bound{limitOf(1, "total.storage", PerGroup, policy.ResourceStorage, 10*mi)}},
			wantGroups: []groupOf{
				{Quota: 1, Key: "total.storage", Used: 2 * mi, Members: []string{"p-a-0", "q-b-0"}},
			},
			wantSubjects: 2,
			wantByLevel:  []string{"total.storage "},
		},
		"the same key of two quotas: two groups": {
			archives: archives("ns", "p", "a", 1, mi),
			shared: &Rules{Bounds: []Bound{limitOf(0, "perPod.checkpoints", PerPod, policy.ResourceCheckpoints, 1),
				limitOf(1, "perPod.checkpoints", PerPod, policy.ResourceCheckpoints, 3)}},
			wantGroups: []groupOf{
				{Key: "perPod.checkpoints", Scope: "ns/p", Used: 1, Members: []string{"p-a-0"}},
				{Quota: 1, Key: "perPod.checkpoints", Scope: "ns/p", Used: 1, Members: []string{"p-a-0"}},
			},
			wantSubjects: 1,
			wantByLevel:  []string{"perPod.checkpoints ns/p", "perPod.checkpoints ns/p"},
		},
		"a pod's containers under other quotas share the pod's group only where the limit is the same": {
			archives: concat(archives("ns", "p", "a", 1, mi), archives("ns", "p", "b", 1, mi)),
			rules: map[string]*Rules{
				"ns/p/a": {Bounds: []Bound{limitOf(0, "perPod.checkpoints", PerPod, policy.ResourceCheckpoints, 5)}},
				"ns/p/b": {Bounds: []Bound{limitOf(0, "perPod.checkpoints", PerPod, policy.ResourceCheckpoints, 5), limitOf(1, "perContainer.checkpoints", PerContainer, policy.ResourceCheckpoints, 1)}},
			},
			wantGroups: []groupOf{
				{Key: "perPod.checkpoints", Scope: "ns/p", Used: 2, Members: []string{"p-a-0", "p-b-0"}},
				{Quota: 1, Key: "perContainer.checkpoints", Scope: "ns/p/b", Used: 1, Members: []string{"p-b-0"}},
			},
			wantSubjects: 2,
			wantByLevel:  []string{"perContainer.checkpoints ns/p/b", "perPod.checkpoints ns/p"},
		},
		"no limit: subjects, no group": {
			archives:     archives("ns", "p", "a", 2, mi),
			shared:       &Rules{MaxAge: &Retention{Duration: 1}},
			wantSubjects: 1,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rules := governed(tc.archives, tc.rules)
			if tc.shared != nil {
				rules = everyArchive(tc.archives, *tc.shared)
			}
			w := build(&Input{Archives: tc.archives, Rules: rules, Quotas: []Meta{{Name: "q0"}, {Name: "q1"}}})
			var groups []groupOf
			for _, g := range w.groups {
				gr := groupOf{Quota: g.limit.Quota, Key: g.limit.Name, Scope: g.scope, Used: g.used}
				for _, i := range g.members {
					gr.Members = append(gr.Members, tc.archives[i].Name)
				}
				groups = append(groups, gr)
			}
			if diff := cmp.Diff(tc.wantGroups, groups); diff != "" {
				t.Errorf("groups (-want +got):\n%s", diff)
			}
			if len(w.subjects) != tc.wantSubjects {
				t.Errorf("%d subjects, want %d", len(w.subjects), tc.wantSubjects)
			}
			for i, a := range tc.archives {
				if s := &w.subjects[w.subjOf[i]]; !s.holds(&a) {
					t.Errorf("archive %s in the subject of %s", a.Scope(PerContainer), s.scopes[PerContainer])
				}
			}
			var byLevel []string
			for _, g := range w.byLevel {
				byLevel = append(byLevel, w.groups[g].limit.Name+" "+w.groups[g].scope)
			}
			if diff := cmp.Diff(tc.wantByLevel, byLevel); diff != "" {
				t.Errorf("pruning order (-want +got):\n%s", diff)
			}
		})
	}
}
