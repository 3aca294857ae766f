package quota

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"

	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// TestRulesAlikeOnlyWhereQuotasCannotTell checks that Resolve, which resolves each
// distinct subject once, gives every archive the rules it would get alone: archives that
// differ in a field some quota of their namespace selects by never share a resolution.
func TestRulesAlikeOnlyWhereQuotasCannotTell(t *testing.T) {
	var quotas []*policy.Quota
	add := collect(t, &quotas)
	add(policy.FromCheckpointQuota(builder.Quota("tier", "shop").PodSelector(map[string]string{"tier": "cache"}).PerPod(3, "").Obj()))
	add(policy.FromCheckpointQuota(builder.Quota("tier", "cache").PodSelector(map[string]string{"tier": "cache"}).PerPod(4, "").Obj()))
	// "tier DoesNotExist" selects a known pod without labels, never a pod that is gone.
	untiered := builder.Quota("untiered", "cache").PerContainer(9, "").Obj()
	untiered.Spec.Target = &cqv1.QuotaTarget{PodSelector: &cqv1.LabelSelector{
		MatchExpressions: []cqv1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpDoesNotExist}}}}
	add(policy.FromCheckpointQuota(untiered))
	add(policy.FromCheckpointQuota(builder.Quota("db", "shop").PodNames("db-0").PerPod(7, "").Obj()))
	add(policy.FromCheckpointQuota(builder.Quota("app", "web").ContainerNames("app").PerContainer(2, "").Obj()))
	add(policy.FromClusterQuota(builder.ClusterQuota("prod").NamespaceSelector(map[string]string{"env": "prod"}).PerContainer(5, "").Obj()))
	nsLabels := map[string]map[string]string{"shop": {"env": "prod"}, "web": {"env": "dev"}, "batch": {"env": "prod"}}
	podLabels := map[string]map[string]string{
		"cache-0": {"tier": "cache"}, "cache-1": {"tier": "cache"}, "front-0": {"tier": "front"}, "bare-0": {},
	}
	labelsOf := func(a *Archive) map[string]string { return podLabels[a.Pod] } // nil: the pod is unknown
	archives := []Archive{
		{Namespace: "shop", Pod: "cache-0", Container: "redis"},
		{Namespace: "shop", Pod: "cache-1", Container: "redis"},
		{Namespace: "shop", Pod: "front-0", Container: "nginx"},
		{Namespace: "shop", Pod: "bare-0", Container: "nginx"},
		{Namespace: "shop", Pod: "gone-0", Container: "nginx"},
		{Namespace: "shop", Pod: "db-0", Container: "pg"},
		{Namespace: "shop", Pod: "db-1", Container: "pg"},
		{Namespace: "web", Pod: "w-0", Container: "app"},
		{Namespace: "web", Pod: "w-1", Container: "sidecar"},
		{Namespace: "batch", Pod: "job-0", Container: "run"},
		{Namespace: "other", Pod: "x-0", Container: "run"},
		// Pods told apart by their labels alone.
		{Namespace: "cache", Pod: "cache-0", Container: "redis"},
		{Namespace: "cache", Pod: "front-0", Container: "redis"},
		{Namespace: "cache", Pod: "bare-0", Container: "redis"},
		{Namespace: "cache", Pod: "gone-0", Container: "redis"},
		// Alike: no quota of their namespace tells them from an archive above.
		{Namespace: "shop", Pod: "cache-0", Container: "sidecar"},
		{Namespace: "web", Pod: "w-2", Container: "app"},
		{Namespace: "batch", Pod: "job-1", Container: "other"},
		{Namespace: "cache", Pod: "cache-1", Container: "sidecar"},
	}
	labels := Labels{Namespaces: nsLabels, Pod: labelsOf}
	shared := Govern(quotas, archives, labels)
	for i, a := range archives {
		alone := Govern(quotas, archives[i:i+1], labels)
		if diff := cmp.Diff(alone.Rules[0], shared.Rules[i], samePaths); diff != "" {
			t.Errorf("%s/%s/%s: rules differ from resolving it alone (-alone +shared):\n%s", a.Namespace, a.Pod, a.Container, diff)
		}
	}
	r := newResolver(quotas, labels)
	for i := range archives {
		r.resolve(&archives[i], &Governance{targeted: make([][]policy.Resolution, len(quotas)), conflicts: make([][]Conflict, len(quotas))})
	}
	if got := len(r.resolved); got != 15 {
		t.Errorf("distinct resolutions = %d, want 15 (the last four archives resolve like earlier ones)", got)
	}
}

// collect returns a function that appends a parsed quota to quotas, failing the test on a
// parse error: add(policy.FromCheckpointQuota(...)).
func collect(tb testing.TB, quotas *[]*policy.Quota) func(*policy.Quota, error) {
	return func(q *policy.Quota, err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		*quotas = append(*quotas, q)
	}
}

// TestResolutionReportsWithoutCompute checks that what a quota reports of its own limits
// (in force or overridden, conflicts) is the result of Resolve alone: nothing that Compute
// does later adds to it.
func TestResolutionReportsWithoutCompute(t *testing.T) {
	var quotas []*policy.Quota
	add := collect(t, &quotas)
	add(policy.FromClusterQuota(builder.ClusterQuota("wide").PerContainer(5, "").Obj()))
	add(policy.FromCheckpointQuota(builder.Quota("a", "shop").PodNames("cache-0").PerPod(3, "").PerContainer(2, "").Obj()))
	add(policy.FromCheckpointQuota(builder.Quota("b", "shop").PodNames("cache-0").PerPod(4, "").Obj()))
	archives := []Archive{
		{Namespace: "shop", Pod: "cache-0", Container: "redis"},
		{Namespace: "shop", Pod: "cache-0", Container: "redis"},
	}
	res := Govern(quotas, archives, Labels{})

	wantConflicts := map[int][]Conflict{
		0: nil,
		1: {{Key: policy.PodCheckpoints, Other: quotas[2].Ref, Pod: "shop/cache-0", Won: true}},
		2: {{Key: policy.PodCheckpoints, Other: quotas[1].Ref, Pod: "shop/cache-0"}},
	}
	for qi, want := range wantConflicts {
		if diff := cmp.Diff(want, res.Conflicts(qi)); diff != "" {
			t.Errorf("%s: conflicts (-want +got):\n%s", quotas[qi].Ref, diff)
		}
	}
	// A cluster quota's limit holds as a ceiling beside the namespaced quota that governs.
	wide := res.Effective(0)
	if len(wide) != 1 || wide[0].State() != cqv1.LimitInForce || len(wide[0].OverriddenBy()) != 0 {
		t.Errorf("wide's perContainer.checkpoints: got %+v, want InForce, overridden by nobody", wide)
	}
	if res.Rules[0] != res.Rules[1] {
		t.Error("two archives of one container got two resolutions, want one shared")
	}
}

// TestHeldWhereASelectorMightGovern checks that an archive whose pod's labels are not known
// is held (counted, never pruned) where a quota that selects pods by label might target it,
// and only there: which limits govern it is not known.
func TestHeldWhereASelectorMightGovern(t *testing.T) {
	var quotas []*policy.Quota
	add := collect(t, &quotas)
	add(policy.FromCheckpointQuota(builder.Quota("db", "shop").PodSelector(map[string]string{"app": "db"}).PerPod(10, "").Obj()))
	add(policy.FromCheckpointQuota(builder.Quota("web", "shop").PodNames("web-0").PodSelector(map[string]string{"app": "web"}).PerPod(10, "").Obj()))
	add(policy.FromCheckpointQuota(builder.Quota("default", "shop").PerPod(1, "").Obj()))
	add(policy.FromCheckpointQuota(builder.Quota("default", "plain").PerPod(1, "").Obj()))
	podLabels := map[string]map[string]string{"shop/db-1": {"app": "db"}}
	labels := Labels{Pod: func(a *Archive) map[string]string { return podLabels[a.Namespace+"/"+a.Pod] }}
	const mi = 1 << 20
	in := concat(archives("shop", "db-0", "pg", 3, mi), archives("shop", "db-1", "pg", 3, mi), archives("plain", "db-0", "pg", 3, mi))
	res := Govern(quotas, in, labels)
	held := map[string]bool{}
	for i, a := range in {
		held[a.Namespace+"/"+a.Pod] = res.Rules[i].Held == HeldByLabels
	}
	want := map[string]bool{
		"shop/db-0":  true,  // gone: "db" might select it, and "web" (web-0 only) might not
		"shop/db-1":  false, // known: "db" selects it
		"plain/db-0": false, // gone, but no quota of plain selects by label
	}
	if diff := cmp.Diff(want, held); diff != "" {
		t.Errorf("held (-want +got):\n%s", diff)
	}
	result := Compute(Input{Archives: in, Quotas: res.Quotas, Rules: res.Rules})
	var pruned []string
	for _, p := range result.Prune {
		pruned = append(pruned, in[p.Archive].Namespace+"/"+in[p.Archive].Name)
	}
	if diff := cmp.Diff([]string{"plain/db-0-pg-0", "plain/db-0-pg-1"}, pruned); diff != "" {
		t.Errorf("pruned (-want +got):\n%s", diff)
	}
	var blocked []Block
	for _, q := range result.Quotas {
		blocked = append(blocked, q.Blocked...)
	}
	if diff := cmp.Diff([]Block{{Rule: "perPod.checkpoints", Per: PerPod, Scope: "shop/db-0", Used: 3, Hard: 1,
		Held: []string{"db-0-pg-0", "db-0-pg-1", "db-0-pg-2"}, HeldBecause: HeldByLabels}}, blocked); diff != "" {
		t.Errorf("blocked (-want +got):\n%s", diff)
	}
}

// TestHeldWhereAQuotaThatDoesNotParseMightGovern checks that a namespaced quota that does
// not parse holds the archives of its namespace alone, and a cluster quota every archive.
func TestHeldWhereAQuotaThatDoesNotParseMightGovern(t *testing.T) {
	var quotas []*policy.Quota
	add := collect(t, &quotas)
	add(policy.FromCheckpointQuota(builder.Quota("default", "plain").PerPod(1, "").Obj()))
	in := []Archive{{Namespace: "shop", Pod: "p", Container: "c"}, {Namespace: "plain", Pod: "p", Container: "c"},
		{Namespace: DeletedNamespace("shop"), Pod: "p", Container: "c"}}
	team := policy.Ref{Kind: policy.KindQuota, Namespace: "shop", Name: "team"}
	all := policy.Ref{Kind: policy.KindClusterQuota, Name: "default"}
	for name, tc := range map[string]struct {
		unparsed []policy.Ref
		want     []string
	}{
		"none":           {want: []string{"", "", ""}},
		"namespaced":     {unparsed: []policy.Ref{team}, want: []string{HeldByUnparsed(team), "", ""}},
		"cluster":        {unparsed: []policy.Ref{all}, want: []string{HeldByUnparsed(all), HeldByUnparsed(all), HeldByUnparsed(all)}},
		"both, in order": {unparsed: []policy.Ref{all, team}, want: []string{HeldByUnparsed(all), HeldByUnparsed(all), HeldByUnparsed(all)}},
	} {
		t.Run(name, func(t *testing.T) {
			res := Govern(quotas, in, Labels{Unparsed: tc.unparsed})
			var got []string
			for _, r := range res.Rules {
				got = append(got, r.Held)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("held (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHeldArchivesSpareNewerOnes checks that a limit over a group with held archives
// prunes nothing newer than the oldest of them: were its rules known, the held archive
// might be the one to go.
func TestHeldArchivesSpareNewerOnes(t *testing.T) {
	var quotas []*policy.Quota
	add := collect(t, &quotas)
	add(policy.FromCheckpointQuota(builder.Quota("default", "shop").Total(10, "").Obj()))
	add(policy.FromCheckpointQuota(builder.Quota("db", "shop").PodSelector(map[string]string{"app": "db"}).PerPod(20, "").Obj()))
	older := archives("shop", "web-1", "nginx", 2, 1)
	for i := range older {
		older[i].CheckpointTime = older[i].CheckpointTime.Add(-time.Hour)
	}
	gone := archives("shop", "db-0", "pg", 8, 1) // its pod is gone: held
	newer := archives("shop", "web-0", "nginx", 5, 1)
	for i := range newer {
		newer[i].CheckpointTime = newer[i].CheckpointTime.Add(time.Hour)
	}
	in := concat(older, gone, newer)
	labels := Labels{Pod: func(a *Archive) map[string]string {
		if a.Pod != "db-0" {
			return map[string]string{"app": "web"}
		}
		return nil
	}}
	res := Govern(quotas, in, labels)
	out := Compute(Input{Archives: in, Quotas: res.Quotas, Rules: res.Rules})
	var pruned []string
	for _, p := range out.Prune {
		pruned = append(pruned, in[p.Archive].Name)
	}
	// 15 archives over a total of 10: the two older than every held one go, no newer one.
	if diff := cmp.Diff([]string{"web-1-nginx-0", "web-1-nginx-1"}, pruned); diff != "" {
		t.Errorf("pruned (-want +got):\n%s", diff)
	}
}
