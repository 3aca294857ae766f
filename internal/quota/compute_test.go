package quota

import (
	"fmt"
	"testing"
	"time"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// archives makes n archives of one container, one minute apart, named <pod>-<container>-<i>
// with i = 0 the oldest.
func archives(ns, pod, container string, n int, size int64) []Archive {
	var out []Archive
	for i := range n {
		out = append(out, Archive{
			Name: fmt.Sprintf("%s-%s-%d", pod, container, i), Namespace: ns, Pod: pod, PodUID: ns + "/" + pod,
			Container: container, Node: "node-a", Size: size, CheckpointTime: t0.Add(time.Duration(i) * time.Minute),
		})
	}
	return out
}

func concat(lists ...[]Archive) []Archive {
	var out []Archive
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func prunedNames(in Input, res Result) []string {
	var out []string
	for _, p := range res.Prune {
		out = append(out, in.Archives[p.Archive].Name)
	}
	return out
}

// everyArchive gives every archive the same rules, as Resolve would if one quota governed them all.
func everyArchive(archives []Archive, rules Rules) []*Rules {
	out := make([]*Rules, len(archives))
	for i := range out {
		out[i] = &rules
	}
	return out
}

func limit(key string, lvl Per, r policy.Resource, v int64) Bound {
	return Bound{Quota: 0, Per: lvl, Limit: policy.Limit{Field: &policy.Field{Name: key, Resource: r}, Value: v}}
}

func TestComputePrunes(t *testing.T) {
	const mi = 1 << 20
	cases := map[string]struct {
		archives []Archive
		rules    Rules
		dryRun   bool
		want     []string
	}{
		"per container count keeps the newest of each container": {
			archives: concat(archives("ns", "p", "a", 5, mi), archives("ns", "p", "b", 5, mi)),
			rules:    Rules{Bounds: []Bound{limit("perContainer.checkpoints", PerContainer, policy.ResourceCheckpoints, 2)}},
			want:     []string{"p-a-0", "p-b-0", "p-a-1", "p-b-1", "p-a-2", "p-b-2"},
		},
		"per pod storage in Mi": {
			archives: concat(archives("ns", "p", "a", 3, 3*mi), archives("ns", "q", "a", 2, 3*mi)),
			rules:    Rules{Bounds: []Bound{limit("perPod.storage", PerPod, policy.ResourceStorage, 7*mi)}},
			want:     []string{"p-a-0"},
		},
		"namespace count prunes oldest across pods": {
			archives: concat(archives("ns", "p", "a", 3, mi), archives("ns", "q", "a", 3, mi)),
			rules:    Rules{Bounds: []Bound{limit("total.checkpoints", PerNamespace, policy.ResourceCheckpoints, 4)}},
			want:     []string{"p-a-0", "q-a-0"},
		},
		"max size": {
			archives: []Archive{{Name: "big", Namespace: "ns", Pod: "p", Container: "a", Size: 3 * mi, CheckpointTime: t0},
				{Name: "small", Namespace: "ns", Pod: "p", Container: "a", Size: mi, CheckpointTime: t0}},
			rules: Rules{MaxSize: &Retention{Value: 2 * mi}},
			want:  []string{"big"},
		},
		"max age": {
			archives: archives("ns", "p", "a", 4, mi),
			rules:    Rules{MaxAge: &Retention{Duration: 2*time.Hour - 90*time.Second}},
			want:     []string{"p-a-0", "p-a-1"},
		},
		"dry run prunes nothing": {
			archives: archives("ns", "p", "a", 4, mi),
			rules:    Rules{Bounds: []Bound{limit("perContainer.checkpoints", PerContainer, policy.ResourceCheckpoints, 1)}},
			dryRun:   true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := Input{Archives: tc.archives, Quotas: []Meta{{Name: "q", DryRun: tc.dryRun}},
				Rules: everyArchive(tc.archives, tc.rules), Now: t0.Add(2 * time.Hour)}
			got := prunedNames(in, Compute(in))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("pruned (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDryRunReportsWhatEnforceDeletes(t *testing.T) {
	arch := concat(archives("ns", "p", "a", 6, 100), archives("ns", "q", "a", 3, 100))
	arch[1].Pinned = true
	rules := Rules{Bounds: []Bound{
		limit("perContainer.checkpoints", PerContainer, policy.ResourceCheckpoints, 3),
		limit("total.storage", PerNamespace, policy.ResourceStorage, 500),
	}}
	in := Input{Archives: arch, Quotas: []Meta{{Name: "q", DryRun: true}}, Rules: everyArchive(arch, rules), Now: t0}
	dry := Compute(in)
	var pending []string
	for _, p := range dry.Quotas[0].Pending {
		pending = append(pending, arch[p.Archive].Name)
	}
	in.Quotas[0].DryRun = false
	enforced := prunedNames(in, Compute(in))
	if diff := cmp.Diff(enforced, pending); diff != "" {
		t.Errorf("DryRun pending differs from what Enforce prunes (-enforce +dryrun):\n%s", diff)
	}
	if len(dry.Prune) != 0 {
		t.Errorf("DryRun pruned %d archives", len(dry.Prune))
	}
}

func TestPinsBlockAndAreNamed(t *testing.T) {
	arch := archives("ns", "p", "a", 3, 100)
	arch[0].Pinned, arch[1].Pinned = true, true
	in := Input{Archives: arch, Quotas: []Meta{{Name: "q"}}, Now: t0,
		Rules: everyArchive(arch, Rules{Bounds: []Bound{limit("perContainer.checkpoints", PerContainer, policy.ResourceCheckpoints, 1)}})}
	res := Compute(in)
	if diff := cmp.Diff([]string{"p-a-2"}, prunedNames(in, res)); diff != "" {
		t.Errorf("pruned (-want +got):\n%s", diff)
	}
	want := []Block{{Rule: "perContainer.checkpoints", Scope: "ns/p/a", Used: 2, Hard: 1, Pinned: []string{"p-a-0", "p-a-1"}}}
	if diff := cmp.Diff(want, res.Quotas[0].Blocked); diff != "" {
		t.Errorf("blocked (-want +got):\n%s", diff)
	}
}

func TestOrphansAfterGrace(t *testing.T) {
	arch := archives("ns", "p", "a", 2, 100)
	arch[0].OrphanSince = t0.Add(-11 * time.Minute)
	arch[1].OrphanSince = t0.Add(-5 * time.Minute)
	in := Input{Archives: arch, Quotas: []Meta{{Name: "q"}}, Now: t0,
		Rules: everyArchive(arch, Rules{Orphans: &Retention{Duration: 10 * time.Minute}})}
	res := Compute(in)
	if diff := cmp.Diff([]string{"p-a-0"}, prunedNames(in, res)); diff != "" {
		t.Errorf("pruned (-want +got):\n%s", diff)
	}
	if want := t0.Add(5 * time.Minute); !res.NextExpiry.Equal(want) {
		t.Errorf("next expiry = %s, want %s", res.NextExpiry, want)
	}
}

func TestUsageReport(t *testing.T) {
	arch := concat(archives("ns", "p", "a", 3, 100), archives("ns", "q", "a", 1, 100))
	in := Input{Archives: arch, Quotas: []Meta{{Name: "q"}}, Now: t0,
		Rules: everyArchive(arch, Rules{Bounds: []Bound{limit("perPod.checkpoints", PerPod, policy.ResourceCheckpoints, 5)}})}
	qr := Compute(in).Quotas[0]
	want := []LimitUsage{{Name: "perPod.checkpoints", Per: PerPod, Resource: policy.ResourceCheckpoints, Hard: 5, Used: 3, Scope: "ns/p"}}
	if diff := cmp.Diff(want, qr.Limits); diff != "" {
		t.Errorf("limits (-want +got):\n%s", diff)
	}
	wantPods := []ScopeUsage{{Namespace: "ns", Pod: "p", Checkpoints: 3, Bytes: 300, Fill: 0.6}, {Namespace: "ns", Pod: "q", Checkpoints: 1, Bytes: 100, Fill: 0.2}}
	if diff := cmp.Diff(wantPods, qr.Pods); diff != "" {
		t.Errorf("pods (-want +got):\n%s", diff)
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0", 512: "512", 1000: "1000", 72 << 10: "72Ki", 10 << 30: "10Gi", 1503238553: "1.4Gi",
		1<<30 + 1<<30/5 + 1: "1.2Gi", 3 << 40: "3Ti", -(2 << 20): "-2Mi",
	} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// samePaths compares field paths by what they print: the paths of a bound and of an
// effective limit are the spec's, found anew by each resolution.
var samePaths = cmp.Comparer(func(a, b *field.Path) bool { return a.String() == b.String() })

// sameReports compares limit reports by what they say, their own quotas included.
var sameReports = cmp.Transformer("report", func(r policy.LimitReport) any {
	return struct {
		Limit                   *policy.Limit
		State                   cqv1.LimitState
		OverriddenBy, Overrides []policy.Ref
		Cap                     *policy.Cap
	}{r.Limit, r.State(), r.OverriddenBy(), r.Overrides(), r.Cap()}
})
