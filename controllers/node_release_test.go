package controllers

import (
	"context"
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// The integration suite releases a gone node's Checkpoints end to end; this covers each
// check on the way, with a reconciler built directly (no SetupWithManager, no timer).
func TestNodeRelease(t *testing.T) {
	const grace = 30 * time.Minute
	node := func(name string) *corev1.Node { return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}} }
	cases := map[string]struct {
		grace time.Duration
		// cached is the Node the cache holds, live the one a live lookup finds.
		cached, live *corev1.Node
		lookup       error
		// after is how long after the first reconcile the second one runs.
		after   time.Duration
		want    []string
		wantErr bool
	}{
		"a node in the cache":            {grace: grace, cached: node("gone"), live: node("gone"), after: 2 * grace, want: []string{"legacy", "live", "other", "stored", "terminating"}},
		"gone within the grace period":   {grace: grace, after: grace - time.Second, want: []string{"legacy", "live", "other", "stored", "terminating"}},
		"gone for the grace period":      {grace: grace, after: grace, want: []string{"legacy", "other", "stored"}},
		"a live lookup finds the node":   {grace: grace, live: node("gone"), after: grace, want: []string{"legacy", "live", "other", "stored", "terminating"}},
		"a live lookup fails":            {grace: grace, lookup: errors.New("connection refused"), after: grace, want: []string{"legacy", "live", "other", "stored", "terminating"}, wantErr: true},
		"a grace period of 0 never does": {after: 24 * time.Hour, want: []string{"legacy", "live", "other", "stored", "terminating"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			objs := []client.Object{
				builder.Checkpoint("live", "shop").Of("web-0", "uid-1", "c").On("gone", "/d", "f1").Obj(),
				builder.Checkpoint("other", "shop").Of("web-1", "uid-2", "c").On("node-a", "/d", "f2").Obj(),
				node("node-a"),
			}
			terminating := builder.Checkpoint("terminating", "shop").Of("web-0", "uid-1", "c").On("gone", "/d", "f3").Obj()
			terminating.Finalizers = []string{cqv1.LegacyFinalizerArchive}
			terminating.DeletionTimestamp = &metav1.Time{Time: time.Now()}
			// An agent before v0.3 published it without spec.archive: it cannot tell its node.
			legacy := builder.Checkpoint("legacy", "shop").Obj()
			legacy.Labels = map[string]string{cqv1.LegacyLabelNode: "gone"}
			// Its archive left the node for a store: the node's going takes nothing of it.
			stored := builder.Checkpoint("stored", "shop").Of("web-0", "uid-1", "c").On("gone", "/d", "f4").
				StoredIn("archive", "shop/web-0/c/uid.tar", metav1.Now()).Obj()
			objs = append(objs, terminating, legacy, stored)
			if tc.cached != nil {
				objs = append(objs, tc.cached)
			}
			cl := fake.NewClientBuilder().WithScheme(testenv.Scheme).WithObjects(objs...).Build()
			var liveObjs []client.Object
			if tc.live != nil {
				liveObjs = append(liveObjs, tc.live)
			}
			reader := interceptor.NewClient(fake.NewClientBuilder().WithScheme(testenv.Scheme).WithObjects(liveObjs...).Build(), interceptor.Funcs{
				Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
					if tc.lookup != nil {
						return tc.lookup
					}
					return c.Get(ctx, key, obj, opts...)
				},
			})
			clk := clocktesting.NewFakeClock(time.Now())
			r := &NodeReleaseReconciler{Client: cl, APIReader: reader, Views: NewViewStore(), Clock: clk, NodeGracePeriod: tc.grace}
			req := ctrl.Request{NamespacedName: client.ObjectKey{Name: "gone"}}
			if _, err := r.Reconcile(context.Background(), req); err != nil {
				t.Fatalf("first reconcile: %v", err)
			}
			clk.Step(tc.after)
			_, err := r.Reconcile(context.Background(), req)
			if (err != nil) != tc.wantErr {
				t.Fatalf("second reconcile: error %v, want one: %v", err, tc.wantErr)
			}
			var list cqv1.CheckpointList
			if err := cl.List(context.Background(), &list); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range list.Items {
				got = append(got, c.Name)
			}
			sort.Strings(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Checkpoints left (-want +got):\n%s", diff)
			}
		})
	}
}

// A released Checkpoint is left out of usage at once, and a pass that read the cache
// before the release can tell.
func TestNodeReleaseTellsThePass(t *testing.T) {
	c := builder.Checkpoint("live", "shop").Of("web-0", "uid-1", "c").On("gone", "/d", "f1").Obj()
	c.UID = "uid-live"
	cl := fake.NewClientBuilder().WithScheme(testenv.Scheme).WithObjects(c).Build()
	clk := clocktesting.NewFakeClock(time.Now())
	e := NewViewStore()
	r := &NodeReleaseReconciler{Client: cl, APIReader: cl, Views: e, Clock: clk, NodeGracePeriod: time.Minute}
	req := ctrl.Request{NamespacedName: client.ObjectKey{Name: "gone"}}
	before := e.releases()
	for range 2 {
		if _, err := r.Reconcile(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		clk.Step(time.Minute)
	}
	if diff := cmp.Diff([2]bool{true, true}, [2]bool{e.isGone("uid-live"), e.releases() != before}); diff != "" {
		t.Errorf("gone, releases changed (-want +got):\n%s", diff)
	}
}

func TestNodeReleaseRequests(t *testing.T) {
	cases := map[string]struct {
		obj  client.Object
		want []string
	}{
		"a Checkpoint maps to its archive's node": {obj: builder.Checkpoint("a", "shop").On("node-a", "/d", "f").Obj(), want: []string{"node-a"}},
		"one without spec.archive maps to none":   {obj: builder.Checkpoint("a", "shop").Obj()},
		"one without a node name maps to none":    {obj: builder.Checkpoint("a", "shop").Of("web-0", "uid-1", "c").Obj()},
		"another kind maps to none":               {obj: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, r := range archiveNode(context.Background(), tc.obj) {
				got = append(got, r.Name)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
		})
	}
}

// A wakeup checks again every node being timed, and only those.
func TestNodeReleaseMissingNodes(t *testing.T) {
	cl := fake.NewClientBuilder().WithScheme(testenv.Scheme).WithObjects(
		builder.Checkpoint("a", "shop").On("gone", "/d", "f1").Obj(),
		builder.Checkpoint("b", "shop").On("back", "/d", "f2").Obj(),
	).Build()
	r := &NodeReleaseReconciler{Client: cl, APIReader: cl, Views: NewViewStore(), Clock: clocktesting.NewFakeClock(time.Now()), NodeGracePeriod: time.Hour}
	for _, n := range []string{"gone", "back", "empty"} {
		if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Name: n}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "back"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Name: "back"}}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, req := range r.missingNodes(context.Background(), nil) {
		got = append(got, req.Name)
	}
	if diff := cmp.Diff([]string{"gone"}, got); diff != "" {
		t.Errorf("missing nodes (-want +got):\n%s", diff)
	}
}
