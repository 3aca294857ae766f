package controllers

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// The pruning delete keeps its preconditions through the metadata client, against a real
// apiserver: a Checkpoint changed since the pass read it, or another object of the same
// name, stays, and the refusal reads as the conflict that pruneOne keeps archives on.
func TestMetadataDeletesKeepPreconditions(t *testing.T) {
	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	ns, err := env.CreateNamespace(ctx, "deletes")
	if err != nil {
		t.Fatal(err)
	}
	deletes, err := withMetadataDeletes(env.Client, env.Config)
	if err != nil {
		t.Fatal(err)
	}
	stale := func(c *cqv1.Checkpoint) (types.UID, string) { return c.UID, c.ResourceVersion }
	cases := map[string]struct {
		// preconditions gives the UID and resourceVersion the delete is sent with, from
		// the Checkpoint as created and as it is now.
		preconditions func(created, now *cqv1.Checkpoint) (types.UID, string)
		name          string // another name than the created one's, if set
		wantConflict  bool
		wantNotFound  bool
	}{
		"as read":                   {preconditions: func(_, now *cqv1.Checkpoint) (types.UID, string) { return stale(now) }},
		"changed since it was read": {preconditions: func(created, _ *cqv1.Checkpoint) (types.UID, string) { return stale(created) }, wantConflict: true},
		"another UID": {preconditions: func(_, now *cqv1.Checkpoint) (types.UID, string) {
			return "another-uid", now.ResourceVersion
		}, wantConflict: true},
		"gone": {preconditions: func(_, now *cqv1.Checkpoint) (types.UID, string) { return stale(now) }, name: "no-such-checkpoint", wantNotFound: true},
	}
	i := 0
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			i++
			c := builder.Checkpoint(fmt.Sprintf("c-%d", i), ns).Of("web-0", "uid-1", "app").
				On("node-a", "/var/lib/kubelet/checkpoints", "f.tar").Size(1024, "1Ki").At(metav1.Now()).Obj()
			if err := env.Client.Create(ctx, c); err != nil {
				t.Fatal(err)
			}
			created := c.DeepCopy()
			c.Annotations = map[string]string{"changed": "yes"}
			if err := env.Client.Update(ctx, c); err != nil {
				t.Fatal(err)
			}
			target := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: c.Name}}
			if tc.name != "" {
				target.Name = tc.name
			}
			target.SetGroupVersionKind(cqv1.GroupVersion.WithKind("Checkpoint"))
			uid, rv := tc.preconditions(created, c)
			err := deletes.Delete(ctx, target, client.Preconditions{UID: &uid, ResourceVersion: &rv})
			if got := apierrors.IsConflict(err); got != tc.wantConflict {
				t.Errorf("conflict: got %v (%v), want %v", got, err, tc.wantConflict)
			}
			if got := apierrors.IsNotFound(err); got != tc.wantNotFound {
				t.Errorf("not found: got %v (%v), want %v", got, err, tc.wantNotFound)
			}
			getErr := env.Client.Get(ctx, client.ObjectKeyFromObject(c), &cqv1.Checkpoint{})
			if kept := getErr == nil; kept != (tc.wantConflict || tc.wantNotFound) {
				t.Errorf("Checkpoint still there: %v (get: %v), want %v", kept, getErr, tc.wantConflict || tc.wantNotFound)
			}
		})
	}
	// Anything but metadata goes through the wrapped client as before.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "typed"}}
	if err := env.Client.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	if err := deletes.Delete(ctx, cm); err != nil {
		t.Fatalf("a typed delete: %v", err)
	}
}
