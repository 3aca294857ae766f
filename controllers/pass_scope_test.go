package controllers

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// passFixture is a cache of Checkpoints in every state that load and remember tell apart,
// and a reconciler built directly that remembers some of them from earlier passes.
func passFixture(t *testing.T, now time.Time) *PruneReconciler {
	t.Helper()
	ckpt := func(name, pod, podUID string) *cqv1.Checkpoint {
		c := builder.Checkpoint(name, "shop").Of(pod, podUID, "c").On("node-a", "/d", name).Obj()
		c.UID = types.UID("uid-" + name)
		return c
	}
	terminating := ckpt("terminating", "gone-pod", "pod-uid-gone")
	terminating.Finalizers = []string{cqv1.LegacyFinalizerArchive}
	terminating.DeletionTimestamp = &metav1.Time{Time: now}
	cl := fake.NewClientBuilder().WithScheme(testenv.Scheme).WithObjects(
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-0", UID: "pod-uid-web"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		ckpt("with-pod", "web-0", "pod-uid-web"),
		ckpt("replaced-pod", "web-0", "pod-uid-earlier"),
		ckpt("orphan", "gone-pod", "pod-uid-gone"),
		ckpt("no-pod-uid", "web-0", ""),
		ckpt("deleted", "web-0", "pod-uid-web"),
		terminating,
	).Build()
	r := &PruneReconciler{Client: cl, APIReader: cl, Views: NewViewStore(), Clock: clocktesting.NewFakeClock(now)}
	earlier := now.Add(-time.Hour)
	for _, uid := range []types.UID{"uid-with-pod", "uid-orphan", "uid-terminating", "uid-no-longer-cached"} {
		r.orphans.since(uid, earlier)
	}
	for _, uid := range []types.UID{"uid-deleted", "uid-terminating", "uid-no-longer-cached"} {
		r.Views.markGone(uid, "shop", earlier)
	}
	return r
}

func TestLoadOnlyReads(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	r := passFixture(t, now)
	orphans, gone := remembered(r)
	s, err := r.load(context.Background(), now, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	gotOrphans, gotGone := remembered(r)
	if diff := cmp.Diff(orphans, gotOrphans); diff != "" {
		t.Errorf("load changed the orphan clocks (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(gone, gotGone); diff != "" {
		t.Errorf("load changed the deleted set (-before +after):\n%s", diff)
	}
	got := map[string]podState{}
	for _, p := range s.fresh {
		for i, c := range p.live {
			got[c.Name] = p.podStates[i]
		}
	}
	// A terminating Checkpoint counts until its file is gone (ArchiveRemoved).
	want := map[string]podState{"with-pod": podPresent, "replaced-pod": podGone, "orphan": podGone, "no-pod-uid": podUnknown, "terminating": podGone}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("live archives and their pods (-want +got):\n%s", diff)
	}
}

func TestRemember(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	earlier := now.Add(-time.Hour)
	r := passFixture(t, now)
	s, err := r.load(context.Background(), now, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	r.remember(s)
	orphans, gone := remembered(r)
	wantOrphans := map[types.UID]time.Time{
		"uid-orphan":       earlier, // its clock runs on
		"uid-replaced-pod": now,     // first seen orphaned now
		"uid-terminating":  earlier, // still cached
	}
	if diff := cmp.Diff(wantOrphans, orphans); diff != "" {
		t.Errorf("orphan clocks (-want +got):\n%s", diff)
	}
	// Kept while the cache still shows it live; forgotten once it shows it terminating or gone.
	if diff := cmp.Diff(map[types.UID]time.Time{"uid-deleted": earlier}, gone); diff != "" {
		t.Errorf("deleted set (-want +got):\n%s", diff)
	}
	since := map[string]time.Time{}
	for _, p := range s.fresh {
		for i, c := range p.live {
			since[c.Name] = p.archives[i].OrphanSince
		}
	}
	wantSince := map[string]time.Time{"with-pod": {}, "replaced-pod": now, "orphan": earlier, "no-pod-uid": {}, "terminating": earlier}
	if diff := cmp.Diff(wantSince, since); diff != "" {
		t.Errorf("orphan since (-want +got):\n%s", diff)
	}
}

// A reconciler built without SetupWithManager runs a pass: nothing it remembers needs
// making first.
func TestPruneReconcilerBuiltDirectly(t *testing.T) {
	cl := fake.NewClientBuilder().WithScheme(testenv.Scheme).WithObjects(
		builder.Checkpoint("orphan", "shop").Of("gone-pod", "pod-uid", "c").On("node-a", "/d", "f").Obj(),
	).Build()
	r := &PruneReconciler{Client: cl, APIReader: cl, Views: NewViewStore(), Clock: clocktesting.NewFakeClock(time.Now())}
	if _, err := r.Reconcile(context.Background(), ctrl.Request{}); err != nil {
		t.Fatal(err)
	}
	var list cqv1.CheckpointList
	if err := cl.List(context.Background(), &list, client.InNamespace("shop")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(1, len(list.Items)); diff != "" {
		t.Errorf("Checkpoints (-want +got):\n%s", diff)
	}
}

func remembered(r *PruneReconciler) (orphans, gone map[types.UID]time.Time) {
	orphans = map[types.UID]time.Time{}
	for k, v := range r.orphans.at {
		orphans[k] = v
	}
	r.Views.mu.Lock()
	defer r.Views.mu.Unlock()
	gone = map[types.UID]time.Time{}
	for k, v := range r.Views.gone {
		gone[k] = v
	}
	return orphans, gone
}

// TestPassesShareParsedPolicies checks that passes over unchanged quotas share one parsed
// policy per quota (the parts each pass keeps hold them: a copy per pass grew the manager's
// heap by 50 MB in the scale run), that a new generation is parsed again, and that a
// deleted quota's policy is let go.
func TestPassesShareParsedPolicies(t *testing.T) {
	ctx := context.Background()
	shop := builder.Quota("shop", "shop").PerContainer(5, "").Obj()
	shop.UID, shop.Generation = "uid-shop", 1
	broken := builder.Quota("broken", "shop").MaxAge("a fortnight").Obj()
	broken.UID, broken.Generation = "uid-broken", 1
	all := builder.ClusterQuota("all").PerNamespace(100, "").Obj()
	all.UID, all.Generation = "uid-all", 1
	cl := fake.NewClientBuilder().WithScheme(testenv.Scheme).WithObjects(shop, broken, all).Build()
	r := &PruneReconciler{Client: cl}
	load := func() *passScope {
		t.Helper()
		s := &passScope{invalid: map[policy.Ref]error{}, generations: map[policy.Ref]int64{}}
		if err := r.loadQuotas(ctx, s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	shopRef := policy.Ref{Kind: policy.KindQuota, Namespace: "shop", Name: "shop"}
	brokenRef := policy.Ref{Kind: policy.KindQuota, Namespace: "shop", Name: "broken"}
	first, second := load(), load()
	if len(first.policies) != 2 || len(second.policies) != 2 {
		t.Fatalf("parsed %d and %d policies, want the 2 that parse", len(first.policies), len(second.policies))
	}
	for i := range first.policies {
		if first.policies[i] != second.policies[i] {
			t.Errorf("the second pass parsed %s again, with its generation unchanged", first.policies[i].Ref)
		}
	}
	if second.invalid[brokenRef] == nil {
		t.Errorf("the second pass lost why %s does not parse", brokenRef)
	}

	// A new generation (a spec change) is parsed again.
	shop.Spec.Limits.PerContainer = builder.Limits(2, "")
	shop.Generation = 2
	if err := cl.Update(ctx, shop); err != nil {
		t.Fatal(err)
	}
	third := load()
	policyOf := func(s *passScope, ref policy.Ref) *policy.Quota {
		for _, q := range s.policies {
			if q.Ref == ref {
				return q
			}
		}
		t.Fatalf("no policy for %s", ref)
		return nil
	}
	if policyOf(third, shopRef) == policyOf(first, shopRef) {
		t.Fatalf("generation 2 of %s was not parsed again", shopRef)
	}
	if v := policyOf(third, shopRef).Limit(policy.ContainerCheckpoints).Value; v != 2 {
		t.Errorf("%s per container after the change: %d checkpoints, want 2", shopRef, v)
	}

	// A deleted quota's policy goes.
	if err := cl.Delete(ctx, broken); err != nil {
		t.Fatal(err)
	}
	load()
	if n := r.Policies.Len(); n != 2 {
		t.Errorf("%d policies kept after %s was deleted, want 2 (%s and %s)", n, brokenRef, shopRef, "ClusterCheckpointQuota all")
	}
}

// TestRememberKeepsTheLabelsOfGonePodsWithArchives checks that a full pass forgets the
// labels of a gone pod once no archive is its, and keeps those of a pod with archives.
func TestRememberKeepsTheLabelsOfGonePodsWithArchives(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	r := passFixture(t, now)
	r.gone.went("pod-uid-gone", map[string]string{"app": "batch"})
	r.gone.went("pod-uid-without-archives", nil)
	s, err := r.load(context.Background(), now, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	r.remember(s)
	got := map[string]map[string]string{}
	for _, uid := range []string{"pod-uid-gone", "pod-uid-without-archives"} {
		got[uid] = r.gone.of(uid)
	}
	want := map[string]map[string]string{"pod-uid-gone": {"app": "batch"}, "pod-uid-without-archives": nil}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("labels of gone pods (-want +got):\n%s", diff)
	}
}

// TestListQuotasReadsTheStores checks that a pass reads the quotas that the informers'
// stores hold, the stores' own objects in the order of their names, rather than copies of
// every quota (3.3 MB for 5,000 at every pass).
func TestListQuotasReadsTheStores(t *testing.T) {
	quotas, clusterQuotas := toolscache.NewStore(toolscache.MetaNamespaceKeyFunc), toolscache.NewStore(toolscache.MetaNamespaceKeyFunc)
	b, a := builder.Quota("b", "shop").Obj(), builder.Quota("a", "zoo").Obj()
	c := builder.Quota("a", "shop").Obj()
	d := builder.ClusterQuota("d").Obj()
	for _, q := range []client.Object{b, a, c} {
		must(t, quotas.Add(q))
	}
	must(t, clusterQuotas.Add(d))
	r := &PruneReconciler{quotas: quotas, clusterQuotas: clusterQuotas}
	cqs, ccqs, err := r.listQuotas(context.Background())
	must(t, err)
	if len(cqs) != 3 || cqs[0] != c || cqs[1] != b || cqs[2] != a {
		t.Errorf("CheckpointQuotas %v, want the stores' own shop/a, shop/b, zoo/a", cqs)
	}
	if len(ccqs) != 1 || ccqs[0] != d {
		t.Errorf("ClusterCheckpointQuotas %v, want the store's own d", ccqs)
	}
}
