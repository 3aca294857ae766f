package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// What a pass does with each prune of a quota that offloads: ask for the move, leave one in
// flight alone, delete where a node rule must free the disk and the upload fails, and delete
// as before without offload.
func TestOffloadsTakeFromThePlan(t *testing.T) {
	failedAt := metav1.NewTime(time.Now().Add(-time.Minute).Truncate(time.Second))
	failing := metav1.Condition{Type: cqv1.CheckpointConditionOffloadFailed, Status: metav1.ConditionTrue, Reason: "OffloadFailed", LastTransitionTime: failedAt,
		Message: "uploading to CheckpointStore archive: connection refused"}
	cases := map[string]struct {
		offload   bool
		rule      string
		requested bool
		failing   bool
		// copied makes the archive a copy fetched to another node (spec.archive.copyOf);
		// originalGone, one whose stored Checkpoint the pass no longer holds.
		copied, originalGone bool
		// check is the node's last check of the store: nil for none, else whether it could write.
		check      *bool
		wantDelete bool
		wantAsked  bool
		wantEvent  string
	}{
		"a limit of a quota that offloads: asked, not deleted":      {offload: true, rule: "perContainer.checkpoints", wantAsked: true, wantEvent: "Normal Offloading"},
		"asked already: in flight, neither asked again nor deleted": {offload: true, rule: "perContainer.checkpoints", requested: true},
		"asked already and failing, under a limit: still waits":     {offload: true, rule: "perContainer.checkpoints", requested: true, failing: true},
		"a node rule and a failing upload: deleted, and said": {offload: true, rule: "perNode.checkpoints", requested: true, failing: true,
			wantDelete: true, wantEvent: "Warning OffloadLost"},
		"no offload: deleted as before":                                {rule: "perContainer.checkpoints", wantDelete: true},
		"the orphan rule of a quota that offloads: deleted, not moved": {offload: true, rule: "orphans", wantDelete: true},
		"a node rule, not asked yet, and the node cannot write to the store: deleted, and said": {offload: true, rule: "nodeFilesystem.minFree",
			check: ptr.To(false), wantDelete: true, wantEvent: "Warning OffloadLost"},
		"a node rule, asked, and the node's check cannot write before the first try: deleted, and said": {offload: true, rule: "perNode.checkpoints",
			requested: true, check: ptr.To(false), wantDelete: true, wantEvent: "Warning OffloadLost"},
		"a node rule and a failed upload, but the store checked writable since: in flight": {offload: true, rule: "perNode.checkpoints",
			requested: true, failing: true, check: ptr.To(true)},
		"a node rule and a store that takes it: asked, not deleted": {offload: true, rule: "perNode.checkpoints", check: ptr.To(true),
			wantAsked: true, wantEvent: "Normal Offloading"},
		"a copy fetched to another node, under a limit of a quota that offloads: deleted, never stored again": {offload: true,
			rule: "perContainer.checkpoints", copied: true, wantDelete: true},
		"a copy fetched to another node, under a node rule: deleted, never stored again": {offload: true,
			rule: "perNode.checkpoints", check: ptr.To(true), copied: true, wantDelete: true},
		"a copy whose stored Checkpoint is gone holds the last bytes: moved as any archive": {offload: true,
			rule: "perContainer.checkpoints", copied: true, originalGone: true, wantAsked: true, wantEvent: "Normal Offloading"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			q := builder.ClusterQuota("cq").Obj()
			if tc.offload {
				q.Spec.Offload = &cqv1.OffloadSpec{Store: "archive"}
			}
			c := builder.Checkpoint("c-1", "shop").Of("web-0", "uid-1", "app").Size(1<<20, "1048576").Obj()
			if tc.requested {
				c.Status.Offload = &cqv1.OffloadRequest{Store: "archive"}
			}
			if tc.copied {
				c.Spec.Archive.CopyOf = &cqv1.ArchiveCopy{Namespace: "shop", Name: "stored", UID: "uid-stored", NodeName: "gone"}
			}
			if tc.failing {
				meta.SetStatusCondition(&c.Status.Conditions, failing)
			}
			cl := fake.NewClientBuilder().WithScheme(testenv.Scheme).WithObjects(q, c).WithStatusSubresource(&cqv1.Checkpoint{}).Build()
			live := &cqv1.Checkpoint{}
			must(t, cl.Get(ctx, client.ObjectKeyFromObject(c), live))
			events := record.NewFakeRecorder(10)
			r := &PruneReconciler{Client: cl, Views: NewViewStore(), Recorder: events}
			s := &passScope{live: []liveCheckpoint{liveOf(live)}, objects: []client.Object{q},
				archives: []*quota.Archive{{Copy: tc.copied && !tc.originalGone}},
				nsLabels: map[string]map[string]string{}, pods: map[types.NamespacedName]*metav1.PartialObjectMetadata{}}
			if tc.check != nil {
				s.storeChecks = map[string]map[string]cqv1.NodeStoreCheck{live.Spec.Archive.NodeName: {"archive": {
					Store: "archive", Reachable: *tc.check, Writable: *tc.check, CheckTime: metav1.Now(), Message: "connection refused"}}}
			}
			left := r.offloads(ctx, s, []quota.Prune{{Archive: 0, Quota: 0, Rule: tc.rule, Scope: "shop/web-0/app", Reason: tc.rule + " 2/1"}})
			if got := len(left) == 1; got != tc.wantDelete {
				t.Errorf("left to delete: %v; want %v", got, tc.wantDelete)
			}
			after := &cqv1.Checkpoint{}
			must(t, cl.Get(ctx, client.ObjectKeyFromObject(c), after))
			asked := !tc.requested && after.Status.Offload != nil
			if asked != tc.wantAsked {
				t.Errorf("status.offload set now: %v; want %v", asked, tc.wantAsked)
			}
			if tc.wantAsked {
				if diff := cmp.Diff(&cqv1.OffloadRequest{Store: "archive", Reason: tc.rule + " 2/1"}, after.Status.Offload); diff != "" {
					t.Errorf("status.offload (-want +got):\n%s", diff)
				}
			}
			var got string
			select {
			case e := <-events.Events:
				got = e
			default:
			}
			if !strings.HasPrefix(got, tc.wantEvent) || (tc.wantEvent == "" && got != "") {
				t.Errorf("event %q; want one starting %q", got, tc.wantEvent)
			}
		})
	}
}

// A node rule that prunes an archive a limit moved takes the prune over: the plan and the
// limit's pending list no longer hold the move, only the node rule's delete.
func TestTakeOver(t *testing.T) {
	move := quota.Prune{Archive: 0, Quota: 0, Rule: "perContainer.checkpoints", Scope: "shop/web-0/app"}
	other := quota.Prune{Archive: 1, Quota: 0, Rule: "perContainer.checkpoints", Scope: "shop/web-0/app"}
	node := quota.Prune{Archive: 0, Quota: 1, Rule: quota.KeyNodeCheckpoints, Scope: "node n1"}
	res := &quota.Result{Prune: []quota.Prune{move, other}, Quotas: []quota.Outcome{{Pending: []quota.Prune{move, other}}, {}}}
	takeOver(res, []quota.Prune{node})
	if diff := cmp.Diff([]quota.Prune{other}, res.Prune); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]quota.Prune{other}, res.Quotas[0].Pending); diff != "" {
		t.Errorf("the limit's pending (-want +got):\n%s", diff)
	}
}

// A fetched copy that a rule frees, even a node rule while its store seems down, is never
// deleted (that would remove the stored archive too): its removal is asked for.
func TestOffloadsFreeAFetchedCopy(t *testing.T) {
	for _, rule := range []string{"perContainer.checkpoints", quota.KeyNodeMinFree} {
		t.Run(rule, func(t *testing.T) {
			ctx := context.Background()
			q := builder.ClusterQuota("cq").Obj()
			c := builder.Checkpoint("c-1", "shop").Of("web-0", "uid-1", "app").Size(1<<20, "1048576").Obj()
			c.Status.Location = &cqv1.ArchiveLocation{Store: "archive", Key: "k", SHA256: "s"}
			meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{Type: cqv1.CheckpointConditionFetched, Status: metav1.ConditionTrue, Reason: "Fetched"})
			cl := fake.NewClientBuilder().WithScheme(testenv.Scheme).WithObjects(q, c).WithStatusSubresource(&cqv1.Checkpoint{}).Build()
			live := &cqv1.Checkpoint{}
			must(t, cl.Get(ctx, client.ObjectKeyFromObject(c), live))
			r := &PruneReconciler{Client: cl, Views: NewViewStore(), Recorder: record.NewFakeRecorder(10)}
			s := &passScope{live: []liveCheckpoint{liveOf(live)}, objects: []client.Object{q},
				storeChecks: map[string]map[string]cqv1.NodeStoreCheck{live.Spec.Archive.NodeName: {"archive": {Store: "archive", CheckTime: metav1.Now()}}}}
			left := r.offloads(ctx, s, []quota.Prune{{Archive: 0, Quota: 0, Rule: rule, Reason: rule}})
			if len(left) != 0 {
				t.Errorf("left to delete: %v; want none", left)
			}
			after := &cqv1.Checkpoint{}
			must(t, cl.Get(ctx, client.ObjectKeyFromObject(c), after))
			if after.Status.Offload == nil || after.Status.Offload.Store != "archive" {
				t.Errorf("status.offload = %v; want the copy's removal asked of store archive", after.Status.Offload)
			}
		})
	}
}
