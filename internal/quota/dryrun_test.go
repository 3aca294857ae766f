package quota

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// TestDryRunPending checks what each quota has pending and blocked when some quotas are
// DryRun: an Enforce quota what it prunes; a DryRun quota what switching it alone to
// Enforce would prune on top of what is pruned anyway, and the limits that would then stay
// over.
func TestDryRunPending(t *testing.T) {
	const mi = 1 << 20
	arch := concat(archives("ns", "p", "a", 5, mi), archives("ns", "q", "a", 2, mi))
	cases := map[string]struct {
		archives []Archive
		pinned   []int
		quotas   []Meta
		limits   []Bound
		// pruned is what the pass deletes; pending what each quota reports.
		pruned  []string
		pending [][]string
		blocked [][]string
	}{
		"DryRun alone: nothing pruned, everything it would prune pending": {
			archives: arch,
			quotas:   []Meta{{Name: "q0", DryRun: true}},
			limits:   []Bound{limitOf(0, "perContainer.checkpoints", PerContainer, policy.ResourceCheckpoints, 2)},
			pending:  [][]string{{"p-a-0", "p-a-1", "p-a-2"}},
			blocked:  [][]string{nil},
		},
		"what Enforce prunes anyway is not pending under the DryRun quota": {
			archives: arch,
			quotas:   []Meta{{Name: "q0"}, {Name: "q1", DryRun: true}},
			limits: []Bound{limitOf(0, "perContainer.checkpoints", PerContainer, policy.ResourceCheckpoints, 4),
				limitOf(1, "perPod.checkpoints", PerPod, policy.ResourceCheckpoints, 2)},
			pruned:  []string{"p-a-0"},
			pending: [][]string{{"p-a-0"}, {"p-a-1", "p-a-2"}},
			blocked: [][]string{nil, nil},
		},
		"two DryRun quotas: each as if it alone were switched": {
			archives: arch,
			quotas:   []Meta{{Name: "q0", DryRun: true}, {Name: "q1", DryRun: true}},
			limits: []Bound{limitOf(0, "perContainer.checkpoints", PerContainer, policy.ResourceCheckpoints, 4),
				limitOf(1, "total.checkpoints", PerNamespace, policy.ResourceCheckpoints, 5)},
			pending: [][]string{{"p-a-0"}, {"p-a-0", "q-a-0"}},
			blocked: [][]string{nil, nil},
		},
		"a DryRun quota reports the limits pins would keep over; the Enforce result does not": {
			archives: arch,
			pinned:   []int{0, 1, 2},
			quotas:   []Meta{{Name: "q0", DryRun: true}},
			limits:   []Bound{limitOf(0, "perContainer.checkpoints", PerContainer, policy.ResourceCheckpoints, 1)},
			// q's container is over too, and q-a-0 is the oldest.
			pending: [][]string{{"q-a-0", "p-a-3", "p-a-4"}},
			blocked: [][]string{{"perContainer.checkpoints ns/p/a 3/1"}},
		},
		"blocks of an Enforce quota, narrowest level first": {
			archives: arch,
			pinned:   []int{0, 1, 2, 5},
			quotas:   []Meta{{Name: "q0"}},
			limits: []Bound{limitOf(0, "total.checkpoints", PerNamespace, policy.ResourceCheckpoints, 2),
				limitOf(0, "perPod.checkpoints", PerPod, policy.ResourceCheckpoints, 2)},
			// Oldest first, whichever limit prunes: q-a-1 is a minute old, p-a-3 three.
			pruned:  []string{"q-a-1", "p-a-3", "p-a-4"},
			pending: [][]string{{"q-a-1", "p-a-3", "p-a-4"}},
			blocked: [][]string{{"perPod.checkpoints ns/p 3/2", "total.checkpoints ns 4/2"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			archives := append([]Archive(nil), tc.archives...)
			for _, i := range tc.pinned {
				archives[i].Pinned = true
			}
			in := Input{Archives: archives, Quotas: tc.quotas, Rules: everyArchive(archives, Rules{Bounds: tc.limits}), Now: t0}
			res := Compute(in)
			if diff := cmp.Diff(tc.pruned, prunedNames(in, res)); diff != "" {
				t.Errorf("pruned (-want +got):\n%s", diff)
			}
			var pending, blocked [][]string
			for _, o := range res.Quotas {
				var p, b []string
				for _, x := range o.Pending {
					p = append(p, archives[x.Archive].Name)
				}
				for _, x := range o.Blocked {
					b = append(b, fmt.Sprintf("%s %s %d/%d", x.Rule, x.Scope, x.Used, x.Hard))
				}
				pending, blocked = append(pending, p), append(blocked, b)
			}
			if diff := cmp.Diff(tc.pending, pending, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("pending (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.blocked, blocked, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("blocked (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBlockNamesAtMostMaxNames checks that a block names the oldest MaxNames pinned
// archives that keep its limit over, and counts them all in its usage.
func TestBlockNamesAtMostMaxNames(t *testing.T) {
	arch := archives("ns", "p", "a", MaxNames+5, 1)
	for i := range arch {
		arch[i].Pinned = true
	}
	in := Input{Archives: arch, Quotas: []Meta{{Name: "q"}}, Now: t0,
		Rules: everyArchive(arch, Rules{Bounds: []Bound{limitOf(0, "perContainer.checkpoints", PerContainer, policy.ResourceCheckpoints, 1)}})}
	blocked := Compute(in).Quotas[0].Blocked
	if len(blocked) != 1 {
		t.Fatalf("%d blocks, want 1", len(blocked))
	}
	b := blocked[0]
	if len(b.Pinned) != MaxNames || b.Pinned[0] != "p-a-0" || b.Used != int64(len(arch)) {
		t.Errorf("block names %d archives from %s, used %d; want the oldest %d, used %d", len(b.Pinned), b.Pinned[0], b.Used, MaxNames, len(arch))
	}
}

// TestComputePartKeepsOnlyWhatAQuotaHas checks which quotas a part keeps: those that
// govern one of its archives, target one of them or conflict there; not the others, whose
// outcome in the part is empty.
func TestComputePartKeepsOnlyWhatAQuotaHas(t *testing.T) {
	var quotas []*policy.Quota
	add := collect(t, &quotas)
	add(policy.FromCheckpointQuota(builder.Quota("default", "shop").PerPod(5, "").Obj()))
	add(policy.FromCheckpointQuota(builder.Quota("default", "team").PerPod(5, "").Obj()))
	add(policy.FromClusterQuota(builder.ClusterQuota("wide").PerPod(9, "").Obj()))
	add(policy.FromClusterQuota(builder.ClusterQuota("a").PerContainer(1, "").Obj()))
	add(policy.FromClusterQuota(builder.ClusterQuota("b").PerContainer(2, "").Obj()))
	own := archives("shop", "p", "c", 2, 1)
	res := Govern(quotas, own, Labels{})
	part := ComputePart(Input{Archives: own, Quotas: res.Quotas, Rules: res.Rules, Now: t0}, res)
	var kept []string
	for _, pq := range part.quotas {
		kept = append(kept, quotas[pq.index].Ref.String())
	}
	// wide is overridden by shop's quota, but targets the archives: its report needs them.
	want := []string{"CheckpointQuota shop/default", "ClusterCheckpointQuota wide", "ClusterCheckpointQuota a", "ClusterCheckpointQuota b"}
	if diff := cmp.Diff(want, kept); diff != "" {
		t.Errorf("quotas kept in shop's part (-want +got):\n%s", diff)
	}
	if len(part.prune) != 1 || part.archives[part.prune[0].Archive].Name != "p-c-0" {
		t.Errorf("the part prunes %+v, want p-c-0 under a's perContainer.checkpoints", part.prune)
	}
}

func TestFormat(t *testing.T) {
	cases := map[string]struct {
		n    int64
		r    policy.Resource
		want string
	}{
		"a count":                      {n: 1536, r: policy.ResourceCheckpoints, want: "1536"},
		"bytes":                        {n: 1536, r: policy.ResourceStorage, want: "1.5Ki"},
		"small bytes stay as they are": {n: 1023, r: policy.ResourceStorage, want: "1023"},
		"exactly a unit":               {n: 1 << 20, r: policy.ResourceStorage, want: "1Mi"},
		"rounded to one decimal":       {n: 1<<20 + 1<<20/3, r: policy.ResourceStorage, want: "1.3Mi"},
		"exabytes":                     {n: 2 << 60, r: policy.ResourceStorage, want: "2Ei"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := format(tc.n, tc.r); got != tc.want {
				t.Errorf("format(%d) = %q, want %q", tc.n, got, tc.want)
			}
		})
	}
}
