package controllers

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// releaseBed is a pass and a node release sharing one Views: Checkpoints of pod web-0
// on node-a, which exists, and on node-gone, gone for longer than the grace period once
// the clock has stepped.
type releaseBed struct {
	base    client.WithWatch
	views   *ViewStore
	clk     *clocktesting.FakeClock
	release *NodeReleaseReconciler
	req     reconcile.Request
}

func newReleaseBed(t *testing.T, limit int64, cps ...*cqv1.Checkpoint) *releaseBed {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-0", UID: "uid-1"}}
	q := builder.Quota("q", "shop").PerContainer(limit, "").Enforcement(cqv1.EnforcementEnforce).Obj()
	objs := []client.Object{pod, q, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}}
	for _, c := range cps {
		objs = append(objs, c)
	}
	b := &releaseBed{
		base:  fake.NewClientBuilder().WithScheme(testenv.Scheme).WithObjects(objs...).WithStatusSubresource(&cqv1.CheckpointQuota{}).Build(),
		views: NewViewStore(), clk: clocktesting.NewFakeClock(time.Now()),
		req: reconcile.Request{NamespacedName: client.ObjectKey{Name: "node-gone"}},
	}
	b.release = &NodeReleaseReconciler{Client: b.base, APIReader: b.base, Views: b.views, Clock: b.clk, NodeGracePeriod: time.Hour}
	if _, err := b.release.Reconcile(context.Background(), b.req); err != nil { // starts the node's clock
		t.Fatal(err)
	}
	b.clk.Step(2 * time.Hour)
	return b
}

// checkpointOn is a Checkpoint of web-0's container app on node, taken at ago before now.
func checkpointOn(name, node string, ago time.Duration) *cqv1.Checkpoint {
	c := builder.Checkpoint(name, "shop").Of("web-0", "uid-1", "app").On(node, "/d", name).
		At(metav1.NewTime(time.Now().Add(-ago))).Obj()
	c.UID = types.UID("uid-ckpt-" + name)
	return c
}

func (b *releaseBed) pass(cl client.Client) *PruneReconciler {
	return passReconciler(cl, b.views, b.clk)
}

// A release that lands after the pass's first check for releases, while it writes its
// counters, is seen before the deletes: the pass deletes nothing for the released
// Checkpoint's count and asks for another pass, which keeps what the limit keeps.
func TestReleaseDuringThePassKeepsWhatTheLimitKeeps(t *testing.T) {
	ctx := context.Background()
	b := newReleaseBed(t, 2, checkpointOn("a", "node-a", 3*time.Hour), checkpointOn("b", "node-a", 2*time.Hour),
		checkpointOn("c", "node-gone", time.Hour))
	released := false
	cl := interceptor.NewClient(b.base, interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, cl client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			if !released { // the release reconciler's timer fires now
				released = true
				if _, err := b.release.Reconcile(ctx, b.req); err != nil {
					return err
				}
			}
			return cl.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	})
	r := b.pass(cl)
	first, err := r.Reconcile(ctx, ctrl.Request{})
	if err != nil {
		t.Fatal(err)
	}
	left := checkpointsLeft(t, b.base)
	cur := &cqv1.CheckpointQuota{}
	must(t, b.base.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "q"}, cur))
	if _, err := r.Reconcile(ctx, ctrl.Request{}); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"first": []string{"a", "b"}, "again": true, "counted": int64(0), "next": []string{"a", "b"}}
	got := map[string]any{"first": left, "again": first.RequeueAfter >= r.BatchDelay, "counted": cur.Status.Pruned.Checkpoints,
		"next": checkpointsLeft(t, b.base)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after c's release, the limit of 2 keeps a and b (-want +got):\n%s", diff)
	}
}

// A release that begins while the pass deletes waits until its deletes are done: none of
// them is sent after a release that the pass did not count.
func TestReleaseWaitsForThePassDeletes(t *testing.T) {
	ctx := context.Background()
	b := newReleaseBed(t, 1, checkpointOn("a", "node-a", 4*time.Hour), checkpointOn("b", "node-a", 3*time.Hour),
		checkpointOn("c", "node-gone", time.Hour))
	// The release's live lookup of the node tells when it is about to release.
	lookedUp := make(chan struct{})
	b.release.APIReader = interceptor.NewClient(b.base, interceptor.Funcs{
		Get: func(ctx context.Context, cl client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			err := cl.Get(ctx, key, obj, opts...)
			if key.Name == "node-gone" {
				close(lookedUp)
			}
			return err
		},
	})
	var mu sync.Mutex
	var sent []string // each delete of the pass, and whether c was released when it was sent
	releaseDone := make(chan error, 1)
	cl := interceptor.NewClient(b.base, interceptor.Funcs{
		Delete: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			mu.Lock()
			if len(sent) == 0 { // the release reconciler's timer fires now
				go func() {
					_, err := b.release.Reconcile(context.Background(), b.req)
					releaseDone <- err
				}()
				<-lookedUp
			}
			note := obj.GetName()
			if b.views.isGone("uid-ckpt-c") {
				note += " after c's release"
			}
			sent = append(sent, note)
			mu.Unlock()
			return cl.Delete(ctx, obj, opts...)
		},
	})
	if _, err := b.pass(cl).Reconcile(ctx, ctrl.Request{}); err != nil {
		t.Fatal(err)
	}
	must(t, <-releaseDone)
	// The pass counted c, the newest, and pruned a and b for it; c's release follows.
	if diff := cmp.Diff([]string{"a", "b"}, sent); diff != "" {
		t.Errorf("the pass's deletes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string(nil), checkpointsLeft(t, b.base)); diff != "" {
		t.Errorf("Checkpoints left (-want +got):\n%s", diff)
	}
}

// checkpointsLeft are the names of the Checkpoints in the API.
func checkpointsLeft(t *testing.T, cl client.Reader) []string {
	t.Helper()
	var list cqv1.CheckpointList
	must(t, cl.List(context.Background(), &list))
	var names []string
	for _, c := range list.Items {
		names = append(names, c.Name)
	}
	return names
}
