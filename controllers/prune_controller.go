package controllers

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// +kubebuilder:rbac:groups=checkpointquota.dev,resources=checkpoints,verbs=get;list;watch;patch;update;delete
// +kubebuilder:rbac:groups=checkpointquota.dev,resources=checkpointquotas;clustercheckpointquotas,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods;namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch;update

// passRequest is the one request of the pruning controller: usage is cluster-wide, so
// every pass recomputes every quota, and the work queue folds a burst of changes into one.
var passRequest = reconcile.Request{NamespacedName: types.NamespacedName{Name: "all-quotas"}}

// PruneReconciler computes usage for every quota from the Checkpoints, hands the result
// to the quota controllers and prunes: it deletes the Checkpoints that Enforce quotas
// prune (the node agents then delete the archives). Built directly, without
// SetupWithManager, it runs passes but arms no timer.
type PruneReconciler struct {
	Client client.Client
	// APIReader reads around the cache, to confirm that a pod is really gone.
	APIReader client.Reader
	Views     *ViewStore
	Recorder  record.EventRecorder
	// Clock is the time of retention rules and grace periods; tests inject a fake one.
	Clock clock.WithTicker
	// RateClock times CountInterval and the cost of a pass: the wall clock even when tests
	// fake Clock, whose time may never move (spacing on it would hold every count back).
	// nil is the wall clock.
	RateClock clock.PassiveClock
	// ResyncPeriod is the period of a full recompute even without a change.
	ResyncPeriod time.Duration
	// Concurrency bounds the deletes in flight.
	Concurrency int
	// BatchDelay is how long a change waits for others before a pass: a burst of
	// thousands of new archives costs a few passes, not one each.
	BatchDelay time.Duration
	// CountInterval is the least time between two writes of one quota's status.pruned,
	// which the pass writes before its deletes: the prunes of a quota counted less than
	// this ago wait, on the wall clock, for the rest of it. 0 spaces nothing.
	CountInterval time.Duration
	// QuotaUpdates and ClusterQuotaUpdates tell the quota controllers that a new view is ready.
	QuotaUpdates, ClusterQuotaUpdates chan event.GenericEvent
	// Policies keeps the quotas' policies from one pass to the next, shared with admission
	// (cmd/manager); nil is a set of the reconciler's own.
	Policies *policy.Parsed

	wake *wakeups

	// The state below is the passes' own, read and written without a lock. That is safe
	// only because one pass runs at a time: Reconcile is its only writer, and the
	// controller has a single worker (MaxConcurrentReconciles: 1 in SetupWithManager),
	// which must stay so. What other goroutines touch locks itself (gone, written by the
	// pod watch; the view store; passCost, read by the batching handlers).

	// orphans times each orphan from when this manager first saw it orphaned.
	orphans firstSeen[types.UID]
	// counted spaces the writes of each quota's status.pruned.
	counted countTimes
	// parts keeps each namespace's computation from one pass to the next.
	parts partCache
	// gone remembers the labels of the pods this manager saw deleted.
	gone goneLabels
	// checkpoints and pods are the cache's stores of Checkpoints and of pod metadata
	// (SetupWithManager), which a pass reads without copying; nil in a reconciler built
	// directly, which reads through Client.
	checkpoints, pods toolscache.Indexer
	// quotas and clusterQuotas are the stores of the quotas' informers (listQuotas).
	quotas, clusterQuotas toolscache.Store
	// passCost is how long the last pass took to read and compute, in nanoseconds.
	passCost atomic.Int64
}

// Reconcile runs one pass: read, remember, compute, publish, prune.
func (r *PruneReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	wall := r.wall()
	began := wall.Now()
	changed, everything := r.Views.takeChanged()
	s, err := r.load(ctx, r.Clock.Now(), changed, everything)
	if err != nil {
		// What changed is not read yet: the retry reads everything.
		r.Views.touchAll()
		return ctrl.Result{}, err
	}
	r.remember(s)
	start := wall.Now()
	res := r.compute(s)
	if err := r.limitNodes(ctx, s, &res); err != nil {
		return ctrl.Result{}, err
	}
	r.limitRemote(s, &res)
	recomputeSeconds.Observe(wall.Since(start).Seconds())
	r.passCost.Store(int64(wall.Since(began)))
	if r.Views.releases() != s.releases {
		// The node release reconciler released Checkpoints that this usage still counts:
		// compute again rather than prune for them.
		return ctrl.Result{RequeueAfter: max(r.BatchDelay, time.Millisecond)}, nil
	}
	r.publish(ctx, s, res)
	r.wake.at(res.NextExpiry)
	plan, wait := r.counted.spaced(s, res.Prune, r.CountInterval, wall.Now())
	err = r.prune(ctx, s, plan)
	if wait == 0 && s.refused.Load() {
		// Archives kept because what the pass decided with changed since the read (a
		// Checkpoint whose delete was refused, a quota, a release): no event may bring the
		// pass that reads it again.
		wait = r.batch().after()
	}
	return ctrl.Result{RequeueAfter: wait}, err
}

// wall is RateClock, the wall clock when none is set.
func (r *PruneReconciler) wall() clock.PassiveClock {
	if r.RateClock == nil {
		return clock.RealClock{}
	}
	return r.RateClock
}

// publish hands each quota's view to the quota controllers.
func (r *PruneReconciler) publish(ctx context.Context, s *passScope, res quota.Result) {
	views := map[policy.Ref]*QuotaView{}
	for i, pq := range s.policies {
		v := &QuotaView{Ref: pq.Ref, Generation: s.generations[pq.Ref], Result: res.Quotas[i],
			Conflicts: s.governance.Conflicts(i), Effective: s.governance.Effective(i),
			DryRun: s.governance.Quotas[i].DryRun, Cluster: pq.Ref.Kind == policy.KindClusterQuota}
		for _, p := range res.Quotas[i].Pending {
			v.Pending = append(v.Pending, PendingArchive{Name: s.live[p.Archive].Name, Scope: p.Scope,
				Key: p.Rule, Reason: p.Reason, Size: s.live[p.Archive].Spec.Archive.SizeBytes})
		}
		s.remoteView(v, i)
		views[pq.Ref] = v
	}
	for ref, err := range s.invalid {
		views[ref] = &QuotaView{Ref: ref, Generation: s.generations[ref], Err: err, Cluster: ref.Kind == policy.KindClusterQuota}
	}
	for _, ref := range r.Views.publish(views) {
		obj := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: ref.Namespace, Name: ref.Name}}
		ch := r.QuotaUpdates
		if ref.Kind == policy.KindClusterQuota {
			ch = r.ClusterQuotaUpdates
		}
		select {
		case ch <- event.GenericEvent{Object: obj}:
		case <-ctx.Done():
			return
		}
	}
}

// batch enqueues the one request after the batch delay. The queue keeps the earliest
// time of a request already waiting, so a stream of changes is passed on at most once
// per delay, and the first change of a quiet period waits no longer than the delay.
// The delay grows to twice what the last pass cost, so that under a stream the passes
// take a bounded share of a core however large the cluster (docs/quota-controller.md).
type batch struct {
	delay time.Duration
	cost  *atomic.Int64
}

// batch is the batching of the reconciler's passes.
func (r *PruneReconciler) batch() batch {
	return batch{delay: r.BatchDelay, cost: &r.passCost}
}

// after is how long the next pass waits: the batch delay, or twice what the last pass cost.
func (b batch) after() time.Duration {
	return max(b.delay, 2*time.Duration(b.cost.Load()))
}

func (b batch) add(q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	q.AddAfter(passRequest, b.after())
}

// Create enqueues the pass.
func (b batch) Create(_ context.Context, _ event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	b.add(q)
}

// Update enqueues the pass.
func (b batch) Update(_ context.Context, _ event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	b.add(q)
}

// Delete enqueues the pass.
func (b batch) Delete(_ context.Context, _ event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	b.add(q)
}

// Generic enqueues the pass.
func (b batch) Generic(_ context.Context, _ event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	b.add(q)
}

// touching is a batch that first marks, in the view store, the namespace of each object
// changed, which the next pass computes again (namespace names it).
func (b batch) touching(e *ViewStore, namespace func(client.Object) string) touching {
	return touching{batch: b, views: e, namespace: namespace}
}

type touching struct {
	batch
	views     *ViewStore
	namespace func(client.Object) string
}

// Create marks the object's namespace and enqueues the pass.
func (t touching) Create(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	t.views.touch(t.namespace(e.Object))
	t.batch.Create(ctx, e, q)
}

// Update marks the object's namespace and enqueues the pass. An object never changes
// namespace (a Checkpoint's spec.archive, which names the one it counts against, is
// immutable), so the new object tells it.
func (t touching) Update(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	t.views.touch(t.namespace(e.ObjectNew))
	t.batch.Update(ctx, e, q)
}

// Delete marks the object's namespace and enqueues the pass.
func (t touching) Delete(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	t.views.touch(t.namespace(e.Object))
	t.batch.Delete(ctx, e, q)
}

// Generic marks the object's namespace and enqueues the pass.
func (t touching) Generic(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	t.views.touch(t.namespace(e.Object))
	t.batch.Generic(ctx, e, q)
}

// usageChanged passes the Checkpoint changes that can change usage. A Checkpoint that is
// terminating (a finalizer holds it) counts until the agent says its file is gone
// (ArchiveRemoved), so only that change, or its going before it, is news. Labels and annotations are
// not compared: the cache strips them (slimCheckpoint), and no decision reads them.
var usageChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*cqv1.Checkpoint)
		n, ok2 := e.ObjectNew.(*cqv1.Checkpoint)
		if !ok1 || !ok2 {
			return true
		}
		if !o.DeletionTimestamp.IsZero() {
			// It counts until the agent says its file is gone.
			return o.IsArchiveRemoved() != n.IsArchiveRemoved()
		}
		return !n.DeletionTimestamp.IsZero() || o.Generation != n.Generation || !equality.Semantic.DeepEqual(o.Status, n.Status)
	},
	DeleteFunc: func(e event.DeleteEvent) bool {
		c, ok := e.Object.(*cqv1.Checkpoint)
		return !ok || e.Object.GetDeletionTimestamp().IsZero() || !c.IsArchiveRemoved()
	},
}

// metadataOf is the metadata-only object of a core kind, for watches and cache reads.
func metadataOf(kind string) *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(kind))
	return m
}

// storeOf is the store of the cache's informer for obj's kind, nil when the cache's
// informer does not expose one (a cache of several namespaces, for one).
func storeOf(ctx context.Context, c cache.Cache, obj client.Object) (toolscache.Indexer, error) {
	informer, err := c.GetInformer(ctx, obj)
	if err != nil {
		return nil, err
	}
	if withStore, ok := informer.(interface{ GetIndexer() toolscache.Indexer }); ok {
		return withStore.GetIndexer(), nil
	}
	return nil, nil
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// SetupWithManager registers the controller; it refuses missing dependencies. ctx bounds
// the index and informer lookups of the setup.
func (r *PruneReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if r.Client == nil || r.APIReader == nil || r.Views == nil || r.Recorder == nil || r.Clock == nil ||
		r.QuotaUpdates == nil || r.ClusterQuotaUpdates == nil {
		return errors.New("prune controller: Client, APIReader, Views, Recorder, Clock and the update channels are required")
	}
	if r.Concurrency < 1 {
		r.Concurrency = 1
	}
	r.wake = newWakeups(r.Clock, r.ResyncPeriod)
	if err := mgr.Add(r.wake); err != nil {
		return err
	}
	if err := r.enablePartsIndex(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	var err error
	if r.checkpoints, err = storeOf(ctx, mgr.GetCache(), &cqv1.Checkpoint{}); err != nil {
		return err
	}
	if r.pods, err = storeOf(ctx, mgr.GetCache(), metadataOf("Pod")); err != nil {
		return err
	}
	if r.quotas, err = storeOf(ctx, mgr.GetCache(), &cqv1.CheckpointQuota{}); err != nil {
		return err
	}
	if r.clusterQuotas, err = storeOf(ctx, mgr.GetCache(), &cqv1.ClusterCheckpointQuota{}); err != nil {
		return err
	}
	all := r.batch()
	// Each change marks the namespace it touches for the next pass to compute again.
	checkpoints := all.touching(r.Views, func(o client.Object) string {
		if c, ok := o.(*cqv1.Checkpoint); ok {
			return c.PodNamespace()
		}
		return o.GetNamespace()
	})
	pods := all.touching(r.Views, client.Object.GetNamespace)
	namespaces := all.touching(r.Views, client.Object.GetName)
	// A pod matters when it appears, goes or changes labels; its status changes do not.
	identity := predicate.Or[client.Object](predicate.LabelChangedPredicate{}, predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld.GetUID() != e.ObjectNew.GetUID() ||
				e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero()
		},
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("prune").
		Watches(&cqv1.Checkpoint{}, checkpoints, builder.WithPredicates(usageChanged)).
		Watches(&cqv1.CheckpointQuota{}, all, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&cqv1.ClusterCheckpointQuota{}, all, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&cqv1.CheckpointNode{}, all).
		WatchesMetadata(metadataOf("Pod"), rememberingPods{EventHandler: pods, gone: &r.gone}, builder.WithPredicates(identity)).
		WatchesMetadata(metadataOf("Namespace"), namespaces, builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WatchesRawSource(source.Channel(r.wake.events, all)).
		// One worker: the passes' state is unlocked (PruneReconciler).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Complete(r)
}
