package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// +kubebuilder:rbac:groups=checkpointquota.dev,resources=checkpoints/status,verbs=patch
// +kubebuilder:rbac:groups=checkpointquota.dev,resources=checkpointstores,verbs=get;list;watch

// ReasonOffloading is the event of a quota that moves archives to its store.
const ReasonOffloading = "Offloading"

// offloadOf is the offload of the quota obj, nil when it has none.
func offloadOf(obj client.Object) *cqv1.OffloadSpec {
	switch q := obj.(type) {
	case *cqv1.CheckpointQuota:
		return q.Spec.Offload
	case *cqv1.ClusterCheckpointQuota:
		return q.Spec.Offload
	}
	return nil
}

// isNodeGuard says whether a prune comes from a node rule (perNode, the free-space floor):
// those free the node's disk even when the store is down.
func isNodeGuard(key string) bool {
	return strings.HasPrefix(key, "perNode.") || key == quota.KeyNodeMinFree
}

// offloads takes from the plan what its quotas move to a store instead of deleting, asks
// the node agents to move it (status.offload, one write per archive), and returns what
// is left to delete. An archive asked for already is in flight: it is neither asked for
// again nor deleted, and counts on its node until its agent has stored it. A node rule
// deletes an archive whose upload fails (OffloadFailed): the node's disk comes first,
// and the event says what was lost.
func (r *PruneReconciler) offloads(ctx context.Context, s *passScope, plan []quota.Prune) []quota.Prune {
	remaining := plan[:0:0]
	groups := map[[3]string]*pruneGroup{}
	var order []*pruneGroup
	stores := map[[3]string]string{}
	for _, p := range plan {
		c := s.live[p.Archive]
		spec := offloadOf(s.objects[p.Quota])
		failing := meta.IsStatusConditionTrue(c.Status.Conditions, cqv1.CheckpointConditionOffloadFailed)
		switch {
		case spec == nil, c.IsPinned():
			remaining = append(remaining, p)
			continue
		case isNodeGuard(p.Key) && failing:
			r.Recorder.Eventf(s.objects[p.Quota], corev1.EventTypeWarning, ReasonOffloadLost,
				"Deleting %s/%s from node %s without storing it: %s, and the upload to CheckpointStore %s fails",
				c.Namespace, c.Name, c.Spec.Archive.NodeName, p.Reason, spec.Store)
			remaining = append(remaining, p)
			continue
		case c.Status.Offload != nil:
			continue // in flight
		case !r.storeAdmits(ctx, s, p, spec.Store):
			// A tenant's quota whose store no longer admits its namespace: its limits hold
			// as if it had no offload.
			remaining = append(remaining, p)
			continue
		}
		if err := r.requestOffload(ctx, c.Checkpoint, spec.Store, p.Reason); err != nil {
			logf.FromContext(ctx).Info("Could not ask for an archive's offload; the next pass asks again", "checkpoint", c.Key(), "error", err.Error())
			continue
		}
		k := [3]string{fmt.Sprint(p.Quota), p.Scope, p.Key}
		pg := groups[k]
		if pg == nil {
			pg = &pruneGroup{quota: p.Quota, scope: p.Scope, key: p.Key, reason: p.Reason}
			groups[k], stores[k] = pg, spec.Store
			order = append(order, pg)
		}
		pg.count++
		pg.bytes += c.Spec.Archive.SizeBytes
	}
	for _, pg := range order {
		r.Recorder.Eventf(s.objects[pg.quota], corev1.EventTypeNormal, ReasonOffloading, "Moving %d archives (%s) of %s to CheckpointStore %s: %s",
			pg.count, quota.Bytes(pg.bytes), pg.scope, stores[[3]string{fmt.Sprint(pg.quota), pg.scope, pg.key}], pg.reason)
	}
	return remaining
}

// ReasonOffloadLost is the warning of a node rule that deletes an archive its quota
// would have moved, because the store does not take it.
const ReasonOffloadLost = "OffloadLost"

// storeAdmits says whether the quota of p may use the store: a cluster quota always; a
// CheckpointQuota only where the store's namespaceSelector selects its namespace now.
func (r *PruneReconciler) storeAdmits(ctx context.Context, s *passScope, p quota.Prune, name string) bool {
	q, ok := s.objects[p.Quota].(*cqv1.CheckpointQuota)
	if !ok {
		return true
	}
	var store cqv1.CheckpointStore
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, &store); err != nil {
		return false
	}
	return store.Admits(s.nsLabels[q.Namespace])
}

// requestOffload sets status.offload, on the resourceVersion the pass decided with: a
// Checkpoint pinned or changed meanwhile is decided again.
func (r *PruneReconciler) requestOffload(ctx context.Context, c *cqv1.Checkpoint, store, reason string) error {
	patched := c.DeepCopy()
	patch := client.MergeFromWithOptions(c, client.MergeFromWithOptimisticLock{})
	patched.Status.Offload = &cqv1.OffloadRequest{Store: store, Reason: reason}
	err := r.Client.Status().Patch(ctx, patched, patch)
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		r.Views.touch(c.PodNamespace())
		return nil
	}
	return err
}
