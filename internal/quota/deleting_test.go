package quota

import (
	"testing"

	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/google/go-cmp/cmp"
)

// TestDeletingArchivesCountButAreNotPrunedAgain checks that the archive of a Checkpoint being
// deleted (a finalizer holds it while its file is on the node) counts in usage, and that
// pruning takes it as gone already: it never prunes a newer archive in its place.
func TestDeletingArchivesCountButAreNotPrunedAgain(t *testing.T) {
	cases := map[string]struct {
		deleting []int
		limit    int64
		// wantPruned are the archives pruned; wantUsed the usage reported.
		wantPruned []string
		wantUsed   int64
	}{
		"none being deleted: the two oldest go":                                 {limit: 3, wantPruned: []string{"p-c-0", "p-c-1"}, wantUsed: 5},
		"the two oldest being deleted: nothing more goes, and they still count": {deleting: []int{0, 1}, limit: 3, wantUsed: 5},
		"one being deleted: one more goes":                                      {deleting: []int{0}, limit: 3, wantPruned: []string{"p-c-1"}, wantUsed: 5},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			arch := archives("ns", "p", "c", 5, 1)
			for _, i := range tc.deleting {
				arch[i].Deleting = true
			}
			in := Input{Archives: arch, Quotas: []Meta{{Name: "q"}},
				Rules: everyArchive(arch, Rules{Bounds: []Bound{limit("perContainer.checkpoints", PerContainer, policy.ResourceCheckpoints, tc.limit)}})}
			res := Compute(in)
			if diff := cmp.Diff(tc.wantPruned, prunedNames(in, res)); diff != "" {
				t.Errorf("pruned (-want +got):\n%s", diff)
			}
			if l := res.Quotas[0].Limits; len(l) != 1 || l[0].Used != tc.wantUsed {
				t.Errorf("usage: got %+v, want perContainer.checkpoints used %d", l, tc.wantUsed)
			}
			if b := res.Quotas[0].Blocked; len(b) != 0 {
				t.Errorf("blocked: got %+v, want none: archives being deleted block nothing", b)
			}
		})
	}
}
