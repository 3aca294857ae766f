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
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

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
			r := &PruneReconciler{Client: cl, APIReader: reader, Engine: NewEngine(), Clock: clocktesting.NewFakeClock(time.Now())}
			live := &cqv1.Checkpoint{}
			if err := cl.Get(context.Background(), client.ObjectKeyFromObject(c), live); err != nil {
				t.Fatal(err)
			}
			w := &passScope{live: []liveCheckpoint{liveOf(live)}}
			done, err := r.pruneOne(context.Background(), w, quota.Prune{Archive: 0, Key: "orphans", Reason: "orphans"})
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
