package controllers

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// The counter is written before the deletes and corrected after them; the integration
// suite covers the restart, this the failures that a real apiserver cannot be made to
// produce on demand.
func TestPruneCountsAhead(t *testing.T) {
	earlier := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	now := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	gone := apierrors.NewNotFound(schema.GroupResource{Resource: "checkpoints"}, "x")
	timeout := apierrors.NewTimeoutError("etcd", 1)
	cases := map[string]struct {
		// shown is the counter in the API; the cached quota shows none when stale.
		shown, stale bool
		// refuse answers the deletes of these Checkpoints.
		refuse     map[string]error
		patchFails bool
		want       cqv1.PrunedStatus
		wantLeft   []string
		wantErr    bool
	}{
		"every delete counted": {
			want: cqv1.PrunedStatus{Checkpoints: 2, Storage: q("3Mi"), LastTime: timePtr(now)},
		},
		"added to the API's counter, not to a stale cached one": {
			shown: true, stale: true,
			want: cqv1.PrunedStatus{Checkpoints: 7, Storage: q("13Mi"), LastTime: timePtr(now)},
		},
		"a delete the API refused is taken back": {
			shown:    true,
			refuse:   map[string]error{"c-2": gone},
			want:     cqv1.PrunedStatus{Checkpoints: 6, Storage: q("11Mi"), LastTime: timePtr(now)},
			wantLeft: []string{"c-2"},
		},
		"every delete refused: the counter and its time are as before": {
			shown:    true,
			refuse:   map[string]error{"c-1": gone, "c-2": gone},
			want:     cqv1.PrunedStatus{Checkpoints: 5, Storage: q("10Mi"), LastTime: &earlier},
			wantLeft: []string{"c-1", "c-2"},
		},
		"a delete whose answer was lost stays counted": {
			refuse:   map[string]error{"c-2": timeout},
			want:     cqv1.PrunedStatus{Checkpoints: 2, Storage: q("3Mi"), LastTime: timePtr(now)},
			wantLeft: []string{"c-2"},
			wantErr:  true,
		},
		"no counter written, nothing deleted": {
			shown: true, patchFails: true,
			want:     cqv1.PrunedStatus{Checkpoints: 5, Storage: q("10Mi"), LastTime: &earlier},
			wantLeft: []string{"c-1", "c-2"},
			wantErr:  true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			qt := builder.Quota("q", "shop").PerContainer(1, "").Obj()
			c1 := builder.Checkpoint("c-1", "shop").Of("web-0", "uid-1", "app").Size(1<<20, "1048576").Obj()
			c2 := builder.Checkpoint("c-2", "shop").Of("web-0", "uid-1", "app").Size(2<<20, "2097152").Obj()
			base := fake.NewClientBuilder().WithScheme(testenv.Scheme).WithObjects(qt, c1, c2).
				WithStatusSubresource(&cqv1.CheckpointQuota{}).Build()
			cached := &cqv1.CheckpointQuota{}
			must(t, base.Get(ctx, client.ObjectKeyFromObject(qt), cached))
			if tc.shown {
				cached.Status.Pruned = cqv1.PrunedStatus{Checkpoints: 5, Storage: q("10Mi"), LastTime: &earlier}
				must(t, base.Status().Update(ctx, cached))
			}
			if tc.stale {
				must(t, base.Get(ctx, client.ObjectKeyFromObject(qt), cached))
				cached.ResourceVersion, cached.Status.Pruned = "1", cqv1.PrunedStatus{}
			}
			cl := interceptor.NewClient(base, interceptor.Funcs{
				Delete: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
					if err := tc.refuse[obj.GetName()]; err != nil {
						return err
					}
					return cl.Delete(ctx, obj, opts...)
				},
				SubResourcePatch: func(ctx context.Context, cl client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
					if tc.patchFails {
						return apierrors.NewForbidden(schema.GroupResource{Resource: "checkpointquotas"}, "q", errors.New("rbac"))
					}
					return cl.SubResource(sub).Patch(ctx, obj, p, opts...)
				},
			})
			var live []liveCheckpoint
			for _, c := range []*cqv1.Checkpoint{c1, c2} {
				got := &cqv1.Checkpoint{}
				must(t, base.Get(ctx, client.ObjectKeyFromObject(c), got))
				live = append(live, liveOf(got))
			}
			w := &passScope{live: live, objects: []client.Object{cached}, pods: map[types.NamespacedName]*metav1.PartialObjectMetadata{},
				policies: []*policy.Quota{{Ref: policy.Ref{Kind: policy.KindQuota, Namespace: "shop", Name: "q"}}},
				quotas:   quotasPrint([]*cqv1.CheckpointQuota{cached}, nil)}
			// The counter's spacing runs on RateClock, years away from Clock and the wall.
			rate := clocktesting.NewFakePassiveClock(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC))
			r := &PruneReconciler{Client: cl, APIReader: cl, Views: NewViewStore(), Recorder: record.NewFakeRecorder(10),
				Clock: clocktesting.NewFakeClock(now), RateClock: rate, Concurrency: 1}
			err := r.prune(ctx, w, []quota.Prune{{Archive: 0, Quota: 0, Rule: "perContainer.checkpoints", Scope: "shop/web-0/app"},
				{Archive: 1, Quota: 0, Rule: "perContainer.checkpoints", Scope: "shop/web-0/app"}})
			if (err != nil) != tc.wantErr {
				t.Errorf("prune: %v, want an error: %v", err, tc.wantErr)
			}
			// A counter written waits a whole interval from RateClock's now; none written, nothing.
			wantWait := time.Hour
			if tc.patchFails {
				wantWait = 0
			}
			if got := r.counted.wait(w.policies[0].Ref, time.Hour, rate.Now()); got != wantWait {
				t.Errorf("the next counter write waits %s, want %s", got, wantWait)
			}
			got := &cqv1.CheckpointQuota{}
			must(t, base.Get(ctx, client.ObjectKeyFromObject(qt), got))
			if diff := cmp.Diff(tc.want, got.Status.Pruned, sameQuantity); diff != "" {
				t.Errorf("status.pruned (-want +got):\n%s", diff)
			}
			var list cqv1.CheckpointList
			must(t, base.List(ctx, &list))
			var left []string
			for _, c := range list.Items {
				left = append(left, c.Name)
			}
			if diff := cmp.Diff(tc.wantLeft, left); diff != "" {
				t.Errorf("Checkpoints left (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAddPruned(t *testing.T) {
	t1 := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	t2 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	cases := map[string]struct {
		p    cqv1.PrunedStatus
		t    prunedTally
		at   time.Time
		want cqv1.PrunedStatus
	}{
		"first prune":         {t: prunedTally{2, 3 << 20}, at: t2, want: cqv1.PrunedStatus{Checkpoints: 2, Storage: q("3Mi"), LastTime: timePtr(t2)}},
		"added, time forward": {p: cqv1.PrunedStatus{Checkpoints: 1, Storage: q("1Mi"), LastTime: &t1}, t: prunedTally{1, 1 << 20}, at: t2, want: cqv1.PrunedStatus{Checkpoints: 2, Storage: q("2Mi"), LastTime: timePtr(t2)}},
		"an older time stays": {p: cqv1.PrunedStatus{Checkpoints: 1, Storage: q("1Mi"), LastTime: timePtr(t2)}, t: prunedTally{1, 1 << 20}, at: t1.Time, want: cqv1.PrunedStatus{Checkpoints: 2, Storage: q("2Mi"), LastTime: timePtr(t2)}},
		"taken back, time kept": {p: cqv1.PrunedStatus{Checkpoints: 2, Storage: q("2Mi"), LastTime: &t1}, t: prunedTally{-1, -1 << 20},
			want: cqv1.PrunedStatus{Checkpoints: 1, Storage: q("1Mi"), LastTime: &t1}},
		"never below zero": {p: cqv1.PrunedStatus{Checkpoints: 1, Storage: q("1Mi")}, t: prunedTally{-2, -2 << 20}, want: cqv1.PrunedStatus{Storage: q("0")}},
		"canonical storage": {p: cqv1.PrunedStatus{Checkpoints: 1, Storage: q("1048576")}, t: prunedTally{1, 1 << 20}, at: t2,
			want: cqv1.PrunedStatus{Checkpoints: 2, Storage: q("2Mi"), LastTime: timePtr(t2)}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := addPruned(tc.p, tc.t, tc.at)
			if diff := cmp.Diff(tc.want, got, sameQuantity); diff != "" {
				t.Errorf("addPruned (-want +got):\n%s", diff)
			}
		})
	}
}

// sameQuantity compares quantities as the API shows them.
var sameQuantity = cmp.Comparer(func(a, b resource.Quantity) bool { return a.String() == b.String() })

func q(s string) resource.Quantity { return resource.MustParse(s) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
