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
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
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

// everything is the one request of the pruning controller: usage is cluster-wide, so
// every pass recomputes every quota, and the work queue folds a burst of changes into one.
var everything = reconcile.Request{NamespacedName: types.NamespacedName{Name: "all-quotas"}}

// PruneReconciler computes usage for every quota from the Checkpoints, hands the result
// to the quota controllers and prunes: it deletes the Checkpoints that Enforce quotas
// prune (the node agents then delete the archives). Built directly, without
// SetupWithManager, it runs passes but arms no timer.
type PruneReconciler struct {
	Client client.Client
	// APIReader reads around the cache, to confirm that a pod is really gone.
	APIReader client.Reader
	Engine    *Engine
	Recorder  record.EventRecorder
	// Clock is the time of retention rules and grace periods; tests inject a fake one.
	Clock clock.WithTicker
	// ResyncPeriod is the period of a full recompute even without a change.
	ResyncPeriod time.Duration
	// Concurrency bounds the deletes in flight.
	Concurrency int
	// BatchDelay is how long a change waits for others before a pass: a burst of
	// thousands of new archives costs a few passes, not one each.
	BatchDelay time.Duration
	// QuotaUpdates and ClusterQuotaUpdates tell the quota controllers that a new view is ready.
	QuotaUpdates, ClusterQuotaUpdates chan event.GenericEvent

	wake *wakeups
	// orphans times each orphan from when this manager first saw it orphaned.
	orphans firstSeen[types.UID]
	// passCost is how long the last pass took to read and compute, in nanoseconds.
	passCost atomic.Int64
}

// Reconcile runs one pass: read, remember, compute, publish, prune.
func (r *PruneReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	began := time.Now()
	s, err := r.load(ctx, r.Clock.Now())
	if err != nil {
		return ctrl.Result{}, err
	}
	r.remember(s)
	start := time.Now()
	res := quota.Compute(s.input)
	if err := r.limitNodes(ctx, s, &res); err != nil {
		return ctrl.Result{}, err
	}
	recomputeSeconds.Observe(time.Since(start).Seconds())
	r.passCost.Store(int64(time.Since(began)))
	if r.Engine.releases() != s.releases {
		// The node release reconciler released Checkpoints that this usage still counts:
		// compute again rather than prune for them.
		return ctrl.Result{RequeueAfter: max(r.BatchDelay, time.Millisecond)}, nil
	}
	r.publish(ctx, s, res)
	r.wake.at(res.NextExpiry)
	return ctrl.Result{}, r.prune(ctx, s, res.Prune)
}

// publish hands each quota's view to the quota controllers.
func (r *PruneReconciler) publish(ctx context.Context, s *passScope, res quota.Result) {
	views := map[policy.Ref]*QuotaView{}
	for i, pq := range s.policies {
		v := &QuotaView{Ref: pq.Ref, Generation: s.generations[pq.Ref], Result: res.Quotas[i],
			Conflicts: s.resolution.Conflicts(i), Effective: s.resolution.Effective(i),
			DryRun: s.input.Quotas[i].DryRun, Cluster: pq.Ref.Kind == policy.KindClusterQuota}
		for _, p := range res.Quotas[i].Pending {
			v.Pending = append(v.Pending, PendingArchive{Name: s.live[p.Archive].Name, Scope: p.Scope,
				Key: p.Key, Reason: p.Reason, Size: s.live[p.Archive].Spec.Archive.SizeBytes})
		}
		views[pq.Ref] = v
	}
	for ref, err := range s.invalid {
		views[ref] = &QuotaView{Ref: ref, Generation: s.generations[ref], Err: err, Cluster: ref.Kind == policy.KindClusterQuota}
	}
	r.Engine.publish(views)
	for ref := range views {
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
// take at most about a third of a core however large the cluster.
type batch struct {
	delay time.Duration
	cost  *atomic.Int64
}

func (b batch) add(q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	q.AddAfter(everything, max(b.delay, 2*time.Duration(b.cost.Load())))
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

// usageChanged passes the Checkpoint changes that can change usage. A Checkpoint that
// was already terminating left usage when its deletion began, so what happens to it
// next (the agent removing its finalizer, then the object going) is no news; nor is the
// prune-reason annotation that the manager writes itself. Pruning thousands of archives
// then costs a few passes rather than one per event.
var usageChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*cqv1.Checkpoint)
		n, ok2 := e.ObjectNew.(*cqv1.Checkpoint)
		if !ok1 || !ok2 {
			return true
		}
		if !o.DeletionTimestamp.IsZero() {
			return false
		}
		return !n.DeletionTimestamp.IsZero() || o.Generation != n.Generation ||
			!equality.Semantic.DeepEqual(o.Labels, n.Labels) || !equality.Semantic.DeepEqual(o.Status, n.Status)
	},
	DeleteFunc: func(e event.DeleteEvent) bool {
		return e.Object.GetDeletionTimestamp().IsZero()
	},
}

// metadataOf is the metadata-only object of a core kind, for watches and cache reads.
func metadataOf(kind string) *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(kind))
	return m
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// SetupWithManager registers the controller; it refuses missing dependencies.
func (r *PruneReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil || r.APIReader == nil || r.Engine == nil || r.Recorder == nil || r.Clock == nil ||
		r.QuotaUpdates == nil || r.ClusterQuotaUpdates == nil {
		return errors.New("prune controller: Client, APIReader, Engine, Recorder, Clock and the update channels are required")
	}
	if r.Concurrency < 1 {
		r.Concurrency = 1
	}
	r.wake = newWakeups(r.Clock, r.ResyncPeriod)
	if err := mgr.Add(r.wake); err != nil {
		return err
	}
	all := batch{delay: r.BatchDelay, cost: &r.passCost}
	// A pod matters when it appears, goes or changes labels; its status changes do not.
	identity := predicate.Or[client.Object](predicate.LabelChangedPredicate{}, predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld.GetUID() != e.ObjectNew.GetUID() ||
				e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero()
		},
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("prune").
		Watches(&cqv1.Checkpoint{}, all, builder.WithPredicates(usageChanged)).
		Watches(&cqv1.CheckpointQuota{}, all, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&cqv1.ClusterCheckpointQuota{}, all, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&cqv1.CheckpointNode{}, all).
		WatchesMetadata(metadataOf("Pod"), all, builder.WithPredicates(identity)).
		WatchesMetadata(metadataOf("Namespace"), all, builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WatchesRawSource(source.Channel(r.wake.events, all)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Complete(r)
}
