package controllers

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// A quota that changes while a pass writes its counter ahead of the deletes keeps the
// archives that the pass decided on the old spec: the counter's write finds the change
// before the cache does, and the cache's quotas are compared before the deletes (a quota
// created). The pass asks for another, which decides on the new spec. A change that leaves
// the spec as it was does not stop the pruning.
func TestQuotaChangedDuringThePassKeepsItsPrunes(t *testing.T) {
	cases := map[string]struct {
		// change runs while the pass writes the quota's counter, before its deletes. Until
		// the pass ends, the cache shows the quotas as they were, unless cacheSees.
		change    func(ctx context.Context, cl client.Client, q *cqv1.CheckpointQuota) error
		cacheSees bool
		// first is what the pass during the change leaves, next what the pass after it does.
		first, next []string
		// again says that the first pass asks for another; counted is the counter of the
		// quota named q after it.
		again   bool
		counted int64
	}{
		"limit raised to 5": {
			change: updated(func(q *cqv1.CheckpointQuota) { q.Spec.Limits.PerContainer.Checkpoints = ptr.To[int64](5) }),
			first:  []string{"newer", "older"}, next: []string{"newer", "older"}, again: true,
		},
		"switched to DryRun": {
			change: updated(func(q *cqv1.CheckpointQuota) { q.Spec.Enforcement = cqv1.EnforcementDryRun }),
			first:  []string{"newer", "older"}, next: []string{"newer", "older"}, again: true,
		},
		"deleted and re-created with a limit of 5": {
			change: func(ctx context.Context, cl client.Client, q *cqv1.CheckpointQuota) error {
				if err := cl.Delete(ctx, q); err != nil {
					return err
				}
				again := builder.Quota("q", "shop").PerContainer(5, "").Enforcement(cqv1.EnforcementEnforce).Obj()
				again.UID, again.Generation = "uid-q2", 1
				return cl.Create(ctx, again)
			},
			first: []string{"newer", "older"}, next: []string{"newer", "older"}, again: true,
		},
		"deleted": {
			change: func(ctx context.Context, cl client.Client, q *cqv1.CheckpointQuota) error { return cl.Delete(ctx, q) },
			first:  []string{"newer", "older"}, next: []string{"newer", "older"}, again: true,
		},
		"a quota naming the container, with a limit of 5, created": {
			change: func(ctx context.Context, cl client.Client, _ *cqv1.CheckpointQuota) error {
				app := builder.Quota("app", "shop").ContainerNames("app").PerContainer(5, "").Obj()
				app.UID, app.Generation = "uid-app", 1
				return cl.Create(ctx, app)
			},
			cacheSees: true,
			first:     []string{"newer", "older"}, next: []string{"newer", "older"}, again: true,
		},
		"limit raised to 5, seen by the cache": {
			change:    updated(func(q *cqv1.CheckpointQuota) { q.Spec.Limits.PerContainer.Checkpoints = ptr.To[int64](5) }),
			cacheSees: true,
			first:     []string{"newer", "older"}, next: []string{"newer", "older"}, again: true,
		},
		"annotated, the spec as it was": {
			change: updated(func(q *cqv1.CheckpointQuota) { q.Annotations = map[string]string{"note": "x"} }),
			first:  []string{"newer"}, next: []string{"newer"}, counted: 1,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Now()
			older, newer := olderAndNewer(now)
			q := builder.Quota("q", "shop").PerContainer(1, "").Enforcement(cqv1.EnforcementEnforce).Obj()
			q.UID, q.Generation = "uid-q1", 1
			base := fake.NewClientBuilder().WithScheme(testenv.Scheme).WithObjects(older, newer, q).
				WithStatusSubresource(&cqv1.CheckpointQuota{}).Build()
			changed := false
			// cached is what the cache shows of the quotas while it is behind the API.
			var cached *cqv1.CheckpointQuotaList
			cl := interceptor.NewClient(base, interceptor.Funcs{
				SubResourcePatch: func(ctx context.Context, cl client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
					if !changed {
						changed = true
						if !tc.cacheSees {
							cached = &cqv1.CheckpointQuotaList{}
							must(t, cl.List(ctx, cached))
						}
						cur := &cqv1.CheckpointQuota{}
						must(t, cl.Get(ctx, client.ObjectKeyFromObject(obj), cur))
						must(t, tc.change(ctx, cl, cur))
					}
					return cl.SubResource(sub).Patch(ctx, obj, patch, opts...)
				},
				List: func(ctx context.Context, cl client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
					if l, ok := list.(*cqv1.CheckpointQuotaList); ok && cached != nil {
						cached.DeepCopyInto(l)
						return nil
					}
					return cl.List(ctx, list, opts...)
				},
			})
			r := passReconciler(cl, NewViewStore(), clocktesting.NewFakeClock(now))
			first, err := r.Reconcile(ctx, ctrl.Request{})
			if err != nil {
				t.Fatal(err)
			}
			left := checkpointsLeft(t, base)
			counted := int64(0)
			if cur := (&cqv1.CheckpointQuota{}); base.Get(ctx, client.ObjectKeyFromObject(q), cur) == nil {
				counted = cur.Status.Pruned.Checkpoints
			}
			cached = nil // the cache catches up
			if _, err := r.Reconcile(ctx, ctrl.Request{}); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{"first": tc.first, "again": tc.again, "counted": tc.counted, "next": tc.next}
			got := map[string]any{"first": left, "again": first.RequeueAfter >= r.BatchDelay, "counted": counted,
				"next": checkpointsLeft(t, base)}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Checkpoints left by the pass during the change and the next one (-want +got):\n%s", diff)
			}
		})
	}
}

// updated is a change that updates the quota's spec or metadata; a spec change raises its
// generation, as the apiserver does and the fake client does not.
func updated(change func(q *cqv1.CheckpointQuota)) func(context.Context, client.Client, *cqv1.CheckpointQuota) error {
	return func(ctx context.Context, cl client.Client, q *cqv1.CheckpointQuota) error {
		spec := q.Spec.DeepCopy()
		change(q)
		if !cmp.Equal(spec, &q.Spec) {
			q.Generation++
		}
		return cl.Update(ctx, q)
	}
}
