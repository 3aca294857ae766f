package quota

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// named is a prune with the archive's name in place of its index.
type named struct {
	Name, Key, Scope, Reason string
	Quota                    int
}

func namedPrunes(in Input, prunes []Prune) []named {
	var out []named
	for _, p := range prunes {
		out = append(out, named{Name: in.Archives[p.Archive].Name, Key: p.Rule, Scope: p.Scope, Reason: p.Reason, Quota: p.Quota})
	}
	return out
}

// TestPruneDecisions checks each decision of a pass: which rule prunes an archive, for
// which quota, over which scope and with which reason; the retention rules at their
// boundaries; and the archives no rule may prune.
func TestPruneDecisions(t *testing.T) {
	const mi = 1 << 20
	two := []Meta{{Name: "q0"}, {Name: "q1"}}
	old := func(as []Archive, ages ...time.Duration) []Archive {
		for i := range as {
			as[i].CheckpointTime = t0.Add(-ages[i])
		}
		return as
	}
	cases := map[string]struct {
		archives []Archive
		quotas   []Meta
		rules    Rules
		mutate   func([]Archive)
		want     []named
		blocked  []Block
	}{
		"maxCheckpointSize prunes what is larger, not what is equal": {
			archives: concat(archives("ns", "p", "a", 1, 3*mi), archives("ns", "p", "b", 1, 2*mi)),
			rules:    Rules{MaxSize: &Retention{Quota: 1, Value: 2 * mi}},
			want:     []named{{Name: "p-a-0", Key: "maxCheckpointSize", Scope: "ns/p/a", Reason: "maxCheckpointSize 3Mi/2Mi", Quota: 1}},
		},
		"maxAge prunes at the age, not before": {
			archives: old(archives("ns", "p", "a", 3, mi), 2*time.Hour, time.Hour, time.Hour-time.Second),
			rules:    Rules{MaxAge: &Retention{Duration: time.Hour}},
			want: []named{{Name: "p-a-0", Key: "maxAge", Scope: "ns/p/a", Reason: "maxAge 2h0m0s/1h0m0s"},
				{Name: "p-a-1", Key: "maxAge", Scope: "ns/p/a", Reason: "maxAge 1h0m0s/1h0m0s"}},
		},
		"orphans go at the end of their grace period, archives of live pods stay": {
			archives: archives("ns", "p", "a", 3, mi),
			mutate: func(as []Archive) {
				as[0].OrphanSince, as[1].OrphanSince = t0.Add(-10*time.Minute), t0.Add(-9*time.Minute)
			},
			rules: Rules{Orphans: &Retention{Duration: 10 * time.Minute}},
			want:  []named{{Name: "p-a-0", Key: "orphans", Scope: "ns/p/a", Reason: "orphans: pod p gone for 10m0s"}},
		},
		"an archive of unknown age is not pruned by maxAge": {
			archives: archives("ns", "p", "a", 1, mi),
			mutate:   func(as []Archive) { as[0].CheckpointTime = time.Time{} },
			rules:    Rules{MaxAge: &Retention{Duration: time.Hour}},
		},
		"one retention rule per archive, the size first": {
			archives: old(archives("ns", "p", "a", 1, 3*mi), 2*time.Hour),
			rules:    Rules{MaxSize: &Retention{Value: mi}, MaxAge: &Retention{Duration: time.Hour}},
			want:     []named{{Name: "p-a-0", Key: "maxCheckpointSize", Scope: "ns/p/a", Reason: "maxCheckpointSize 3Mi/1Mi"}},
		},
		"what retention pruned is no longer over a limit": {
			archives: old(archives("ns", "p", "a", 3, mi), 3*time.Hour, 2*time.Minute, time.Minute),
			rules: Rules{MaxAge: &Retention{Duration: time.Hour},
				Bounds: []Bound{limitOf(0, "perContainer.checkpoints", PerContainer, policy.ResourceCheckpoints, 2)}},
			want: []named{{Name: "p-a-0", Key: "maxAge", Scope: "ns/p/a", Reason: "maxAge 3h0m0s/1h0m0s"}},
		},
		"a limit prunes oldest first, names the scope and its usage when the pass began": {
			archives: concat(archives("ns", "p", "a", 3, 2*mi), archives("ns", "q", "a", 1, 2*mi)),
			rules:    Rules{Bounds: []Bound{limitOf(1, "perPod.storage", PerPod, policy.ResourceStorage, 3*mi)}},
			want: []named{{Name: "p-a-0", Key: "perPod.storage", Scope: "ns/p", Reason: "perPod.storage 6Mi/3Mi", Quota: 1},
				{Name: "p-a-1", Key: "perPod.storage", Scope: "ns/p", Reason: "perPod.storage 6Mi/3Mi", Quota: 1}},
		},
		"the narrowest limit first: the wider one needs no more": {
			archives: concat(archives("ns", "p", "a", 3, mi), archives("ns", "p", "b", 1, mi)),
			rules: Rules{Bounds: []Bound{limitOf(0, "total.checkpoints", PerNamespace, policy.ResourceCheckpoints, 3),
				limitOf(1, "perContainer.checkpoints", PerContainer, policy.ResourceCheckpoints, 2)}},
			want: []named{{Name: "p-a-0", Key: "perContainer.checkpoints", Scope: "ns/p/a", Reason: "perContainer.checkpoints 3/2", Quota: 1}},
		},
		"a limit of 0 prunes every archive it may": {
			archives: archives("ns", "p", "a", 2, mi),
			rules:    Rules{Bounds: []Bound{limitOf(0, "perContainer.checkpoints", PerContainer, policy.ResourceCheckpoints, 0)}},
			want: []named{{Name: "p-a-0", Key: "perContainer.checkpoints", Scope: "ns/p/a", Reason: "perContainer.checkpoints 2/0"},
				{Name: "p-a-1", Key: "perContainer.checkpoints", Scope: "ns/p/a", Reason: "perContainer.checkpoints 2/0"}},
		},
		"pinned and unreadable archives: no retention rule prunes them, a limit skips them and says so": {
			archives: archives("ns", "p", "a", 4, 3*mi),
			mutate:   func(as []Archive) { as[0].Pinned, as[1].Unreadable = true, true },
			rules: Rules{MaxSize: &Retention{Value: 1 << 40},
				Bounds: []Bound{limitOf(0, "perContainer.checkpoints", PerContainer, policy.ResourceCheckpoints, 1)}},
			// The pins count: every unpinned archive goes, and the limit still does not hold.
			want: []named{{Name: "p-a-2", Key: "perContainer.checkpoints", Scope: "ns/p/a", Reason: "perContainer.checkpoints 4/1"},
				{Name: "p-a-3", Key: "perContainer.checkpoints", Scope: "ns/p/a", Reason: "perContainer.checkpoints 4/1"}},
			blocked: []Block{{Rule: "perContainer.checkpoints", Per: PerContainer, Scope: "ns/p/a", Used: 2, Hard: 1,
				Pinned: []string{"p-a-0", "p-a-1"}}},
		},
		"held archives: counted, never pruned, and nothing newer of their group goes in their place": {
			archives: archives("ns", "p", "a", 3, mi),
			rules: Rules{Held: HeldByLabels, MaxAge: &Retention{Duration: time.Nanosecond},
				Bounds: []Bound{limitOf(0, "perContainer.checkpoints", PerContainer, policy.ResourceCheckpoints, 1)}},
			blocked: []Block{{Rule: "perContainer.checkpoints", Per: PerContainer, Scope: "ns/p/a", Used: 3, Hard: 1,
				Held: []string{"p-a-0", "p-a-1", "p-a-2"}, HeldBecause: HeldByLabels}},
		},
		"a DryRun quota's rules prune nothing in the pass": {
			archives: old(archives("ns", "p", "a", 2, 3*mi), 2*time.Hour, time.Minute),
			quotas:   []Meta{{Name: "q0", DryRun: true}, {Name: "q1"}},
			rules: Rules{MaxAge: &Retention{Duration: time.Hour},
				Bounds: []Bound{limitOf(1, "perContainer.checkpoints", PerContainer, policy.ResourceCheckpoints, 1)}},
			want: []named{{Name: "p-a-0", Key: "perContainer.checkpoints", Scope: "ns/p/a", Reason: "perContainer.checkpoints 2/1", Quota: 1}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if tc.mutate != nil {
				tc.mutate(tc.archives)
			}
			quotas := tc.quotas
			if quotas == nil {
				quotas = two
			}
			in := Input{Archives: tc.archives, Quotas: quotas, Rules: everyArchive(tc.archives, tc.rules), Now: t0}
			res := Compute(in)
			if diff := cmp.Diff(tc.want, namedPrunes(in, res.Prune)); diff != "" {
				t.Errorf("pruned (-want +got):\n%s", diff)
			}
			var blocked []Block
			for _, o := range res.Quotas {
				blocked = append(blocked, o.Blocked...)
			}
			if diff := cmp.Diff(tc.blocked, blocked, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("blocked (-want +got):\n%s", diff)
			}
			// What a quota has pending under Enforce is what it prunes.
			var pending []Prune
			for q, o := range res.Quotas {
				if !quotas[q].DryRun {
					pending = append(pending, o.Pending...)
				}
			}
			if len(pending) != len(res.Prune) {
				t.Errorf("%d pending under Enforce, %d pruned", len(pending), len(res.Prune))
			}
		})
	}
}

func TestNextExpiry(t *testing.T) {
	arch := func(age, orphanFor time.Duration) Archive {
		a := Archive{Name: "a", Namespace: "ns", Pod: "p", Container: "c", CheckpointTime: t0.Add(-age)}
		if orphanFor > 0 {
			a.OrphanSince = t0.Add(-orphanFor)
		}
		return a
	}
	cases := map[string]struct {
		archives []Archive
		rules    Rules
		want     time.Time
	}{
		"no retention rule":                {archives: []Archive{arch(time.Hour, time.Minute)}},
		"the next archive to reach maxAge": {archives: []Archive{arch(50*time.Minute, 0), arch(30*time.Minute, 0)}, rules: Rules{MaxAge: &Retention{Duration: time.Hour}}, want: t0.Add(10 * time.Minute)},
		"one already past is no expiry":    {archives: []Archive{arch(2*time.Hour, 0)}, rules: Rules{MaxAge: &Retention{Duration: time.Hour}}},
		"exactly now is not after now":     {archives: []Archive{arch(time.Hour, 0)}, rules: Rules{MaxAge: &Retention{Duration: time.Hour}}},
		"the end of an orphan's grace":     {archives: []Archive{arch(0, 4*time.Minute)}, rules: Rules{Orphans: &Retention{Duration: 10 * time.Minute}}, want: t0.Add(6 * time.Minute)},
		"an archive of unknown age has no expiry": {archives: []Archive{{Name: "a", Namespace: "ns", Pod: "p", Container: "c"}},
			rules: Rules{MaxAge: &Retention{Duration: time.Hour}}},
		"an archive of a live pod has no grace": {archives: []Archive{arch(0, 0)}, rules: Rules{Orphans: &Retention{Duration: 10 * time.Minute}}},
		"the earlier of both rules": {archives: []Archive{arch(55*time.Minute, 1*time.Minute)},
			rules: Rules{MaxAge: &Retention{Duration: time.Hour}, Orphans: &Retention{Duration: 10 * time.Minute}}, want: t0.Add(5 * time.Minute)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			res := Compute(Input{Archives: tc.archives, Quotas: []Meta{{Name: "q"}}, Rules: everyArchive(tc.archives, tc.rules), Now: t0})
			if !res.NextExpiry.Equal(tc.want) {
				t.Errorf("next expiry %s, want %s", res.NextExpiry, tc.want)
			}
		})
	}
}

func TestArchiveOf(t *testing.T) {
	taken := metav1.NewTime(t0)
	full := builder.Checkpoint("c-1", "shop").Of("cache-0", "uid-1", "redis").On("node-a", "/var/lib/kubelet/checkpoints", "f.tar").
		Size(3<<20, "3Mi").At(taken).Obj()
	pinned := full.DeepCopy()
	pinned.Spec.Pinned = true
	orphan := builder.Checkpoint("c-2", "checkpoint-quota-system").Of("cache-0", "uid-1", "redis").On("node-a", "/d", "f.tar").
		Size(1, "1").At(taken).OrphanOf("shop").Obj()
	legacy := &cqv1.Checkpoint{ObjectMeta: metav1.ObjectMeta{Name: "old", Namespace: "shop"}}
	copied := full.DeepCopy()
	copied.Spec.Archive.CopyOf = &cqv1.ArchiveCopy{Namespace: "shop", Name: "stored", UID: "uid-stored", NodeName: "node-b"}
	cases := map[string]struct {
		c      *cqv1.Checkpoint
		want   Archive
		wantOK bool
	}{
		"every field of the identity": {c: full, wantOK: true, want: Archive{Name: "c-1", Namespace: "shop", Pod: "cache-0", PodUID: "uid-1",
			Container: "redis", Node: "node-a", Size: 3 << 20, CheckpointTime: t0}},
		"pinned": {c: pinned, wantOK: true, want: Archive{Name: "c-1", Namespace: "shop", Pod: "cache-0", PodUID: "uid-1",
			Container: "redis", Node: "node-a", Size: 3 << 20, CheckpointTime: t0, Pinned: true}},
		"an orphan of a deleted namespace counts against it, not where its object lives": {c: orphan, wantOK: true,
			want: Archive{Name: "c-2", Namespace: DeletedNamespace("shop"), Pod: "cache-0", PodUID: "uid-1", Container: "redis",
				Node: "node-a", Size: 1, CheckpointTime: t0}},
		"an agent before v0.3 left no identity": {c: legacy},
		"a copy fetched to another node is a copy, freed first": {c: copied, wantOK: true, want: Archive{Name: "c-1", Namespace: "shop",
			Pod: "cache-0", PodUID: "uid-1", Container: "redis", Node: "node-a", Size: 3 << 20, CheckpointTime: t0, Copy: true}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, ok := ArchiveOf(tc.c)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tc.wantOK)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("archive (-want +got):\n%s", diff)
			}
		})
	}
	if DeletedNamespace("shop") == "shop" {
		t.Error("a deleted namespace's archives would share the limits of a namespace created under its name")
	}
}

func TestArchiveScope(t *testing.T) {
	a := Archive{Namespace: "shop", Pod: "cache-0", Container: "redis"}
	want := map[Per]string{PerContainer: "shop/cache-0/redis", PerPod: "shop/cache-0", PerNamespace: "shop", PerGroup: ""}
	for lvl, w := range want {
		if got := a.Scope(lvl); got != w {
			t.Errorf("Scope(%d) = %q, want %q", lvl, got, w)
		}
	}
}
