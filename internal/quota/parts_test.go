package quota

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// randomWorld is a small cluster drawn from seed: namespaces with labels, pods with labels,
// archives of every kind (pinned, unreadable, orphaned, of equal times) and quotas of both
// kinds with every level and rule, DryRun among them, conflicting where they happen to.
// No cluster quota sets limits.total, so no limit spans two namespaces.
func randomWorld(t *testing.T, seed uint64) ([]*policy.Quota, []Archive, Labels, time.Time) {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	var quotas []*policy.Quota
	add := collect(t, &quotas)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	nsLabels := map[string]map[string]string{}
	podLabels := map[string]map[string]string{}
	var archives []Archive
	namespaces := 2 + r.IntN(5)
	for n := range namespaces {
		ns := fmt.Sprintf("ns-%d", n)
		nsLabels[ns] = map[string]string{"env": []string{"prod", "dev"}[r.IntN(2)]}
		for p := range 1 + r.IntN(4) {
			pod := fmt.Sprintf("pod-%d", p)
			podLabels[ns+"/"+pod] = map[string]string{"tier": []string{"cache", "web"}[r.IntN(2)]}
			for _, c := range []string{"app", "sidecar"}[:1+r.IntN(2)] {
				for i := range r.IntN(9) {
					a := Archive{Name: fmt.Sprintf("%s-%s-%d", pod, c, i), Namespace: ns, Pod: pod,
						PodUID: ns + "-" + pod, Container: c, Node: fmt.Sprintf("node-%d", r.IntN(3)),
						Size: int64(1+r.IntN(8)) << 20,
						// Few distinct times, so that ties between namespaces are common.
						CheckpointTime: now.Add(-time.Duration(r.IntN(12)) * 30 * time.Minute),
						Pinned:         r.IntN(8) == 0, Unreadable: r.IntN(12) == 0}
					if r.IntN(6) == 0 {
						a.OrphanSince = now.Add(-time.Duration(r.IntN(4)) * 10 * time.Minute)
					}
					archives = append(archives, a)
				}
			}
		}
		enforcement := func() cqv1.EnforcementMode {
			if r.IntN(4) == 0 {
				return cqv1.EnforcementDryRun
			}
			return cqv1.EnforcementEnforce
		}
		if r.IntN(3) > 0 {
			add(policy.FromCheckpointQuota(builder.Quota("default", ns).Total(int64(3+r.IntN(20)), "").
				PerPod(int64(2+r.IntN(8)), "").MaxAge(fmt.Sprintf("%dh", 2+r.IntN(5))).Enforcement(enforcement()).Obj()))
		}
		if r.IntN(2) == 0 {
			add(policy.FromCheckpointQuota(builder.Quota("cache", ns).PodSelector(map[string]string{"tier": "cache"}).
				PerPod(int64(1+r.IntN(5)), fmt.Sprintf("%dMi", 4+r.IntN(20))).Total(int64(2+r.IntN(10)), "").Enforcement(enforcement()).Obj()))
		}
		if r.IntN(2) == 0 {
			add(policy.FromCheckpointQuota(builder.Quota("app", ns).ContainerNames("app").PerContainer(int64(r.IntN(4)), "").
				MaxCheckpointSize(fmt.Sprintf("%dMi", 2+r.IntN(6))).Enforcement(enforcement()).Obj()))
		}
		if r.IntN(3) == 0 {
			add(policy.FromCheckpointQuota(builder.Quota("pod0", ns).PodNames("pod-0").PerPod(int64(1+r.IntN(4)), "").
				Orphans(cqv1.OrphanDelete, "15m").Enforcement(enforcement()).Obj()))
		}
	}
	add(policy.FromClusterQuota(builder.ClusterQuota("default").PerNamespace(int64(5+r.IntN(30)), "").
		PerContainer(int64(2+r.IntN(5)), "").Orphans(cqv1.OrphanDelete, "10m").Obj()))
	add(policy.FromClusterQuota(builder.ClusterQuota("prod").NamespaceSelector(map[string]string{"env": "prod"}).
		PerPod(int64(1+r.IntN(6)), fmt.Sprintf("%dMi", 8+r.IntN(30))).MaxAge("3h").Obj()))
	add(policy.FromClusterQuota(builder.ClusterQuota("sidecars").ContainerNames("sidecar").PerContainer(int64(1+r.IntN(3)), "").
		Enforcement(cqv1.EnforcementDryRun).Obj()))
	labels := Labels{Namespaces: nsLabels, Pod: func(a *Archive) map[string]string { return podLabels[a.Namespace+"/"+a.Pod] }}
	return quotas, archives, labels, now
}

// TestMergeIsComputeOfAll checks that computing each namespace apart and merging gives
// exactly what computing every archive together gives: the same archives pruned, for the
// same reasons, in the same order, and the same report, conflicts and effective limits
// for every quota.
func TestMergeIsComputeOfAll(t *testing.T) {
	for seed := range uint64(300) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			quotas, archives, labels, now := randomWorld(t, seed)
			if Coupled(quotas) {
				t.Fatal("the random world has no limit across namespaces")
			}
			whole := Govern(quotas, archives, labels)
			want := Compute(Input{Archives: archives, Quotas: whole.Quotas, Rules: whole.Rules, Now: now})

			var parts []*Part
			for start := 0; start < len(archives); {
				end := start
				for end < len(archives) && archives[end].Namespace == archives[start].Namespace {
					end++
				}
				own := archives[start:end:end]
				res := Govern(quotas, own, labels)
				parts = append(parts, ComputePart(Input{Archives: own, Quotas: res.Quotas, Rules: res.Rules, Now: now}, res))
				start = end
			}
			merged, res, got := Merge(quotas, parts)

			if diff := cmp.Diff(pointersTo(archives), merged); diff != "" {
				t.Fatalf("archives (-whole +merged):\n%s", diff)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("result (-whole +merged):\n%s", diff)
			}
			if diff := cmp.Diff(whole.Rules, res.Rules, samePaths); diff != "" {
				t.Errorf("rules (-whole +merged):\n%s", diff)
			}
			for qi := range quotas {
				if diff := cmp.Diff(whole.Conflicts(qi), res.Conflicts(qi)); diff != "" {
					t.Errorf("conflicts of %s (-whole +merged):\n%s", quotas[qi].Ref, diff)
				}
				if diff := cmp.Diff(whole.Effective(qi), res.Effective(qi), samePaths, sameReports); diff != "" {
					t.Errorf("effective limits of %s (-whole +merged):\n%s", quotas[qi].Ref, diff)
				}
			}
		})
	}
}

func TestCoupled(t *testing.T) {
	cases := map[string]struct {
		quota *policy.Quota
		err   error
		want  bool
	}{}
	add := func(name string, want bool) func(*policy.Quota, error) {
		return func(q *policy.Quota, err error) {
			cases[name] = struct {
				quota *policy.Quota
				err   error
				want  bool
			}{q, err, want}
		}
	}
	add("cluster quota with limits.total", true)(policy.FromClusterQuota(builder.ClusterQuota("all").Total(0, "10Gi").Obj()))
	add("cluster quota per namespace", false)(policy.FromClusterQuota(builder.ClusterQuota("ns").PerNamespace(5, "").Obj()))
	add("targeted namespace quota with limits.total", false)(policy.FromCheckpointQuota(builder.Quota("q", "shop").PodNames("a").Total(3, "").Obj()))
	add("namespace quota with limits.total", false)(policy.FromCheckpointQuota(builder.Quota("q", "shop").Total(3, "").Obj()))
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if tc.err != nil {
				t.Fatal(tc.err)
			}
			if got := Coupled([]*policy.Quota{tc.quota}); got != tc.want {
				t.Errorf("Coupled = %v, want %v", got, tc.want)
			}
		})
	}
}
