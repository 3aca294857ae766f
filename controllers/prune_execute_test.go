package controllers

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/event"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// An orphan is deleted only when a live lookup says its pod is gone; the integration
// suite covers the pod that exists and the pod that is gone, this the lookup that fails,
// which a real apiserver cannot be made to do on demand.
func TestOrphanKeptUnlessLookupConfirms(t *testing.T) {
	cases := map[string]struct {
		lookup      error
		pod         *corev1.Pod
		wantDeleted bool
	}{
		"lookup fails":                 {lookup: errors.New("connection refused")},
		"lookup forbidden":             {lookup: apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "web-0", errors.New("rbac"))},
		"pod exists with the same UID": {pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-0", UID: "uid-1"}}},
		"pod exists with another UID":  {pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-0", UID: "uid-2"}}, wantDeleted: true},
		"pod not found":                {wantDeleted: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := builder.Checkpoint("web-0-c-1", "shop").Of("web-0", "uid-1", "c").Obj()
			objs := []client.Object{c}
			if tc.pod != nil {
				objs = append(objs, tc.pod)
			}
			cl := fake.NewClientBuilder().WithScheme(testenv.Scheme).WithObjects(objs...).Build()
			reader := interceptor.NewClient(fake.NewClientBuilder().WithScheme(testenv.Scheme).WithObjects(objs...).Build(), interceptor.Funcs{
				Get: func(ctx context.Context, cl client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
					if tc.lookup != nil {
						return tc.lookup
					}
					return cl.Get(ctx, key, obj, opts...)
				},
			})
			r := &PruneReconciler{Client: cl, APIReader: reader, Views: NewViewStore(), Clock: clocktesting.NewFakeClock(time.Now())}
			live := &cqv1.Checkpoint{}
			if err := cl.Get(context.Background(), client.ObjectKeyFromObject(c), live); err != nil {
				t.Fatal(err)
			}
			w := &passScope{live: []liveCheckpoint{liveOf(live)}}
			done, err := r.pruneOne(context.Background(), w, quota.Prune{Archive: 0, Rule: "orphans", Reason: "orphans"})
			if err != nil {
				t.Fatalf("pruneOne: %v", err)
			}
			err = cl.Get(context.Background(), client.ObjectKeyFromObject(c), &cqv1.Checkpoint{})
			if diff := cmp.Diff(tc.wantDeleted, apierrors.IsNotFound(err)); diff != "" || done != tc.wantDeleted {
				t.Errorf("deleted (-want +got):\n%s (pruneOne said %v)", diff, done)
			}
		})
	}
}

// A delete refused because the Checkpoint changed since the pass read it (here an
// annotation, a change that brings no pass) keeps the archive, and marks its namespace to be
// read again by a pass the refusal asks for; a kept part would otherwise try the same
// resourceVersion until the next full pass.
func TestRefusedDeleteReadsTheNamespaceAgain(t *testing.T) {
	cases := map[string]struct {
		changed     bool
		wantDeleted bool
	}{
		"changed since the read": {changed: true},
		"unchanged":              {wantDeleted: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			c := builder.Checkpoint("web-0-c-1", "shop").Of("web-0", "uid-1", "c").On("node-a", "/d", "f").Obj()
			cl := fake.NewClientBuilder().WithScheme(testenv.Scheme).WithObjects(c).Build()
			read := &cqv1.Checkpoint{}
			if err := cl.Get(ctx, client.ObjectKeyFromObject(c), read); err != nil {
				t.Fatal(err)
			}
			if tc.changed {
				annotated := read.DeepCopy()
				annotated.Annotations = map[string]string{"note": "evidence"}
				if err := cl.Update(ctx, annotated); err != nil {
					t.Fatal(err)
				}
			}
			r := &PruneReconciler{Client: cl, APIReader: cl, Views: NewViewStore(), Clock: clocktesting.NewFakeClock(time.Now())}
			w := &passScope{live: []liveCheckpoint{liveOf(read)}}
			done, err := r.pruneOne(ctx, w, quota.Prune{Archive: 0, Rule: "perContainer.checkpoints"})
			if err != nil {
				t.Fatalf("pruneOne: %v", err)
			}
			err = cl.Get(ctx, client.ObjectKeyFromObject(c), &cqv1.Checkpoint{})
			changed, _ := r.Views.takeChanged()
			got := map[string]any{"deleted": apierrors.IsNotFound(err), "done": done, "refused": w.refused.Load(), "read again": changed["shop"]}
			// A deleted Checkpoint's namespace is read again too: it left usage.
			want := map[string]any{"deleted": tc.wantDeleted, "done": tc.wantDeleted, "refused": !tc.wantDeleted, "read again": true}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// The pass whose delete was refused asks for the pass that reads the Checkpoint again, and
// that pass deletes it.
func TestRefusedDeleteAsksForAnotherPass(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	older, newer := olderAndNewer(now)
	q := builder.Quota("q", "shop").PerContainer(1, "").Obj()
	base := fake.NewClientBuilder().WithScheme(testenv.Scheme).WithObjects(older, newer, q).
		WithStatusSubresource(&cqv1.CheckpointQuota{}).Build()
	annotated := false
	cl := interceptor.NewClient(base, interceptor.Funcs{
		// The first delete finds the Checkpoint annotated since the pass read it.
		Delete: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			if !annotated {
				annotated = true
				c := &cqv1.Checkpoint{}
				if err := cl.Get(ctx, client.ObjectKeyFromObject(obj), c); err != nil {
					return err
				}
				c.Annotations = map[string]string{"note": "evidence"}
				if err := cl.Update(ctx, c); err != nil {
					return err
				}
			}
			return cl.Delete(ctx, obj, opts...)
		},
	})
	r := passReconciler(cl, NewViewStore(), clocktesting.NewFakeClock(now))
	left := func() []string {
		var list cqv1.CheckpointList
		must(t, base.List(ctx, &list))
		var names []string
		for _, c := range list.Items {
			names = append(names, c.Name)
		}
		return names
	}
	first, err := r.Reconcile(ctx, ctrl.Request{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"newer", "older"}, left()); diff != "" || first.RequeueAfter < time.Second {
		t.Fatalf("after the refused delete (-want +got):\n%s; requeue after %s, want at least the batch delay", diff, first.RequeueAfter)
	}
	if _, err := r.Reconcile(ctx, ctrl.Request{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"newer"}, left()); diff != "" {
		t.Errorf("after the next pass (-want +got):\n%s", diff)
	}
}

// passReconciler is a PruneReconciler built directly on cl, which runs whole passes
// (Reconcile) on views and clk.
func passReconciler(cl client.Client, views *ViewStore, clk clock.WithTicker) *PruneReconciler {
	return &PruneReconciler{Client: cl, APIReader: cl, Views: views, Clock: clk,
		Recorder: record.NewFakeRecorder(100), Concurrency: 1, BatchDelay: time.Second,
		QuotaUpdates: make(chan event.GenericEvent, 10), ClusterQuotaUpdates: make(chan event.GenericEvent, 10)}
}

// olderAndNewer are two Checkpoints of web-0's container app in shop, an hour apart.
func olderAndNewer(now time.Time) (older, newer *cqv1.Checkpoint) {
	older = builder.Checkpoint("older", "shop").Of("web-0", "uid-1", "app").On("node-a", "/d", "f1").
		At(metav1.NewTime(now.Add(-time.Hour))).Obj()
	newer = builder.Checkpoint("newer", "shop").Of("web-0", "uid-1", "app").On("node-a", "/d", "f2").
		At(metav1.NewTime(now)).Obj()
	return older, newer
}
