package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// releaseGoneNodes releases the Checkpoints of nodes that have been gone for the grace
// period: no agent is left to remove their archives and finalizers, and they would count
// against quotas forever. A node is gone when the cache has not held it for the grace
// period (timed from when this manager first saw it missing) and a live lookup confirms
// it; any error keeps the Checkpoints. It returns how many it released and when the next
// missing node's grace period ends.
func (r *PruneReconciler) releaseGoneNodes(ctx context.Context, w *world, now time.Time) (int, time.Time, error) {
	if r.NodeGracePeriod <= 0 {
		return 0, time.Time{}, nil
	}
	byNode := map[string][]*cqv1.Checkpoint{}
	for _, c := range w.all {
		// A Checkpoint that an agent before v0.3 published has no spec.archive until its
		// agent adopts it; its node label may be a shortened form of the node's name, so
		// it cannot tell which node is gone, and the Checkpoint is kept (docs/node-agent.md).
		if c.Spec.Archive != nil {
			byNode[c.Spec.Archive.NodeName] = append(byNode[c.Spec.Archive.NodeName], c)
		}
	}
	var next time.Time
	released := 0
	for node := range r.nodeGoneSince {
		if _, ok := byNode[node]; !ok {
			delete(r.nodeGoneSince, node)
		}
	}
	for node, cps := range byNode {
		n := &metav1.PartialObjectMetadata{}
		n.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Node"))
		err := r.Client.Get(ctx, client.ObjectKey{Name: node}, n, client.UnsafeDisableDeepCopy)
		if !apierrors.IsNotFound(err) {
			delete(r.nodeGoneSince, node)
			continue
		}
		since, ok := r.nodeGoneSince[node]
		if !ok {
			since = now
			r.nodeGoneSince[node] = now
		}
		if due := since.Add(r.NodeGracePeriod); due.After(now) {
			next = earliest(next, due)
			continue
		}
		if err := r.APIReader.Get(ctx, client.ObjectKey{Name: node}, n); !apierrors.IsNotFound(err) {
			continue
		}
		for _, c := range cps {
			if err := r.release(ctx, c, fmt.Sprintf("nodeGone: node %s gone for %s", node, now.Sub(since).Round(time.Second))); err != nil {
				return released, next, err
			}
			released++
		}
		logf.FromContext(ctx).Info("released the checkpoints of a gone node", "node", node, "count", len(cps))
	}
	releasedCheckpoints.Add(float64(released))
	return released, next, nil
}

// release deletes a Checkpoint of a gone node, in one conditional write. The agent, if the
// node comes back, publishes the archive again: the Node it recorded is not the new one.
// The finalizer of older versions, which no agent will remove, goes too.
func (r *PruneReconciler) release(ctx context.Context, c *cqv1.Checkpoint, reason string) error {
	if c.DeletionTimestamp.IsZero() {
		uid := c.UID
		if err := r.Client.Delete(ctx, c.DeepCopy(), client.Preconditions{UID: &uid}); err != nil {
			return ignoreRace(err)
		}
	}
	if controllerutil.ContainsFinalizer(c, cqv1.LegacyFinalizerArchive) {
		obj := c.DeepCopy()
		controllerutil.RemoveFinalizer(obj, cqv1.LegacyFinalizerArchive)
		if err := r.Client.Patch(ctx, obj, client.MergeFromWithOptions(c, client.MergeFromWithOptimisticLock{})); err != nil {
			return ignoreRace(err)
		}
	}
	logf.FromContext(ctx).V(1).Info("released a Checkpoint", "checkpoint", client.ObjectKeyFromObject(c), "reason", reason)
	r.Engine.markGone(c.UID, r.Clock.Now())
	return nil
}
