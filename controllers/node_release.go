package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// +kubebuilder:rbac:groups=checkpointquota.dev,resources=checkpoints,verbs=get;list;watch;patch;update;delete
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch

// NodeReleaseReconciler releases the Checkpoints of nodes that have been gone for the
// grace period: no agent is left to remove their archives and finalizers, and they would
// count against quotas forever. Its request is a node's name. A node is gone when the
// cache has not held it for the grace period (timed from when this manager first saw it
// missing) and a live lookup confirms it; any error keeps the Checkpoints. Built directly,
// without SetupWithManager, it releases but arms no timer.
type NodeReleaseReconciler struct {
	Client client.Client
	// APIReader reads around the cache, to confirm that a node is really gone.
	APIReader client.Reader
	// Views is told which Checkpoints were released, so that a pass leaves them out.
	Views *ViewStore
	// Clock times the grace period; tests inject a fake one.
	Clock clock.WithTicker
	// NodeGracePeriod is how long a node must be gone before its Checkpoints are released; 0 never releases.
	NodeGracePeriod time.Duration
	// ResyncPeriod is the period of a check of every missing node even without a change.
	ResyncPeriod time.Duration

	wake *wakeups
	// checkpoints is the cache's store of Checkpoints (SetupWithManager), nil in a
	// reconciler built directly, which lists through Client.
	checkpoints toolscache.Indexer
	mu          sync.Mutex
	// missing times each node with Checkpoints from when the cache was first seen without it.
	missing firstSeen[string]
}

// Reconcile releases the Checkpoints of one node once it has been gone for the grace period.
func (r *NodeReleaseReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if r.NodeGracePeriod <= 0 {
		return ctrl.Result{}, nil
	}
	node, now := req.Name, r.Clock.Now()
	defer r.rearm(now)
	err := r.Client.Get(ctx, client.ObjectKey{Name: node}, metadataOf("Node"), client.UnsafeDisableDeepCopy)
	if !apierrors.IsNotFound(err) {
		r.forget(node)
		return ctrl.Result{}, nil
	}
	cps, err := r.onNode(ctx, node)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("listing the Checkpoints of node %s: %w", node, err)
	}
	if len(cps) == 0 {
		r.forget(node)
		return ctrl.Result{}, nil
	}
	since := r.seen(node, now)
	if since.Add(r.NodeGracePeriod).After(now) {
		return ctrl.Result{}, nil
	}
	err = r.APIReader.Get(ctx, client.ObjectKey{Name: node}, metadataOf("Node"))
	switch {
	case err == nil:
		return ctrl.Result{}, nil // the cache lags; the node's return forgets it
	case !apierrors.IsNotFound(err):
		return ctrl.Result{}, fmt.Errorf("confirming that node %s is gone: %w", node, err)
	}
	reason := fmt.Sprintf("nodeGone: node %s gone for %s", node, now.Sub(since).Round(time.Second))
	for _, c := range cps {
		if err := r.release(ctx, c, reason); err != nil {
			return ctrl.Result{}, err
		}
	}
	logf.FromContext(ctx).Info("Released the Checkpoints of a gone node", "node", node, "count", len(cps))
	releasedCheckpoints.Add(float64(len(cps)))
	return ctrl.Result{}, nil
}

// onNode are the cached Checkpoints whose archive is on node, shared with the cache: read
// only. It reads every cached Checkpoint, which only a node missing from the cache asks
// for; an index by node cost two entries per Checkpoint to serve this rare question. A Checkpoint that an agent before v0.3 published has no
// spec.archive until its agent adopts it; its node label may be a shortened form of the
// node's name, so it cannot tell which node is gone: it is left out, and kept
// (docs/node-agent.md). An offloaded archive is not on its node any more: its Checkpoint
// stays, under remoteLimits (docs/offload.md).
func (r *NodeReleaseReconciler) onNode(ctx context.Context, node string) ([]*cqv1.Checkpoint, error) {
	all, err := checkpointStore{client: r.Client, store: r.checkpoints}.all(ctx)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(c *cqv1.Checkpoint) bool {
		return c.Spec.Archive == nil || c.Spec.Archive.NodeName != node || c.IsOffloaded()
	}), nil
}

// release deletes a Checkpoint of a gone node, in one conditional write. The agent, if the
// node comes back, publishes the archive again: the Node it recorded is not the new one.
// The finalizer of older versions, which no agent will remove, goes too.
func (r *NodeReleaseReconciler) release(ctx context.Context, c *cqv1.Checkpoint, reason string) error {
	if c.DeletionTimestamp.IsZero() {
		if err := r.markAndDelete(ctx, c); err != nil {
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
	logf.FromContext(ctx).V(1).Info("Released a Checkpoint", "checkpoint", client.ObjectKeyFromObject(c), "reason", reason)
	return nil
}

// markAndDelete marks a Checkpoint released, then deletes it, while no pass is between its
// last check for releases and the end of its deletes (ViewStore.releasing): a pass that
// counted it either sees the release and prunes nothing for it, or has sent its deletes.
func (r *NodeReleaseReconciler) markAndDelete(ctx context.Context, c *cqv1.Checkpoint) error {
	unhold := r.Views.holdReleases()
	defer unhold()
	uid := c.UID
	r.Views.markReleased(uid, c.PodNamespace(), r.Clock.Now())
	err := r.Client.Delete(ctx, c.DeepCopy(), client.Preconditions{UID: &uid})
	// Not found or another UID: that Checkpoint is gone anyway. Else it still counts.
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		r.Views.unmarkGone(uid)
	}
	return err
}

func (r *NodeReleaseReconciler) seen(node string, now time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.missing.since(node, now)
}

func (r *NodeReleaseReconciler) forget(node string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.missing.forget(node)
}

// rearm asks for a check of every missing node when the next grace period ends. A node
// whose grace period is over but that a live lookup still finds waits for its Node's event.
func (r *NodeReleaseReconciler) rearm(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.wake.at(r.missing.earliestAfter(r.NodeGracePeriod, now))
}

// missingNodes are the requests of every node being timed.
func (r *NodeReleaseReconciler) missingNodes(context.Context, client.Object) []reconcile.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []reconcile.Request
	for _, n := range r.missing.keys() {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: n}})
	}
	return out
}

// archiveNode is the request of the node that holds a Checkpoint's archive.
func archiveNode(_ context.Context, o client.Object) []reconcile.Request {
	if c, ok := o.(*cqv1.Checkpoint); ok && c.Spec.Archive != nil && c.Spec.Archive.NodeName != "" {
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: c.Spec.Archive.NodeName}}}
	}
	return nil
}

// SetupWithManager registers the controller; it refuses missing dependencies. ctx bounds
// the informer lookup of the setup.
func (r *NodeReleaseReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if r.Client == nil || r.APIReader == nil || r.Views == nil || r.Clock == nil {
		return errors.New("node release controller: Client, APIReader, Views and Clock are required")
	}
	var err error
	if r.checkpoints, err = storeOf(ctx, mgr.GetCache(), &cqv1.Checkpoint{}); err != nil {
		return err
	}
	r.wake = newWakeups(r.Clock, r.ResyncPeriod)
	if err := mgr.Add(r.wake); err != nil {
		return err
	}
	// A node matters when it appears or goes, not when its status changes.
	presence := predicate.Funcs{UpdateFunc: func(event.UpdateEvent) bool { return false }}
	return ctrl.NewControllerManagedBy(mgr).
		Named("node-release").
		WatchesMetadata(metadataOf("Node"), &handler.EnqueueRequestForObject{}, builder.WithPredicates(presence)).
		Watches(&cqv1.Checkpoint{}, handler.EnqueueRequestsFromMapFunc(archiveNode),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Channel(r.wake.events, handler.EnqueueRequestsFromMapFunc(r.missingNodes))).
		Complete(r)
}
