package controllers

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	kerrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// +kubebuilder:rbac:groups=checkpointquota.dev,resources=checkpointquotas/status;clustercheckpointquotas/status,verbs=get;update;patch

// CheckpointQuotaReconciler writes the status of CheckpointQuotas from the pruning
// controller's views.
type CheckpointQuotaReconciler struct {
	Client client.Client
	Status *StatusWriter
	// Updates receives the quotas whose view is new.
	Updates chan event.GenericEvent
}

// Reconcile writes one quota's status.
func (r *CheckpointQuotaReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	q := &cqv1.CheckpointQuota{}
	ref := policy.Ref{Kind: policy.KindQuota, Namespace: req.Namespace, Name: req.Name}
	if err := r.Client.Get(ctx, req.NamespacedName, q); err != nil {
		if kerrors.IsNotFound(err) {
			r.Status.forget(ref)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	return r.Status.Write(ctx, q, &q.Status, ref)
}

// SetupWithManager registers the controller; it refuses missing dependencies.
func (r *CheckpointQuotaReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil || r.Status == nil || r.Updates == nil {
		return errors.New("CheckpointQuota controller: Client, Status and Updates are required")
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&cqv1.CheckpointQuota{}, builder.WithPredicates(predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, statusChanged))).
		WatchesRawSource(source.Channel(r.Updates, &handler.EnqueueRequestForObject{})).
		Complete(r)
}

// ClusterCheckpointQuotaReconciler writes the status of ClusterCheckpointQuotas.
type ClusterCheckpointQuotaReconciler struct {
	Client  client.Client
	Status  *StatusWriter
	Updates chan event.GenericEvent
}

// Reconcile writes one cluster quota's status.
func (r *ClusterCheckpointQuotaReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	q := &cqv1.ClusterCheckpointQuota{}
	ref := policy.Ref{Kind: policy.KindClusterQuota, Name: req.Name}
	if err := r.Client.Get(ctx, req.NamespacedName, q); err != nil {
		if kerrors.IsNotFound(err) {
			r.Status.forget(ref)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	return r.Status.Write(ctx, q, &q.Status, ref)
}

// SetupWithManager registers the controller; it refuses missing dependencies.
func (r *ClusterCheckpointQuotaReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil || r.Status == nil || r.Updates == nil {
		return errors.New("ClusterCheckpointQuota controller: Client, Status and Updates are required")
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&cqv1.ClusterCheckpointQuota{}, builder.WithPredicates(predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, statusChanged))).
		WatchesRawSource(source.Channel(r.Updates, &handler.EnqueueRequestForObject{})).
		Complete(r)
}

// StatusWriter writes quota status, for both kinds: recomputed from the latest view on
// every pass, written only when it changed, and at most once per Interval per quota.
type StatusWriter struct {
	Client   client.Client
	Views    *ViewStore
	Recorder record.EventRecorder
	// Interval is the least time between two status writes of one quota.
	Interval time.Duration
	// RateClock times the Interval. It is the wall clock even when tests fake the
	// pruning controller's clock: a fake clock that does not move would hold every write back.
	RateClock clock.Clock

	writes writeTimes
	mu     sync.Mutex
	// settling holds, per quota, until when a status with prunes in flight is held back.
	settling map[policy.Ref]time.Time
}

// Write brings the quota's status up to date with its view. The observed generation is
// the one that the view was computed from, so it only moves once that succeeded.
func (s *StatusWriter) Write(ctx context.Context, obj client.Object, status *cqv1.QuotaStatus, ref policy.Ref) (ctrl.Result, error) {
	view, ok := s.Views.View(ref)
	if !ok || view.Generation != obj.GetGeneration() {
		// The pruning controller has not computed this generation yet; it sends the
		// quota here again when it has.
		return ctrl.Result{}, nil
	}
	if !view.pruning() {
		// Settled, whether or not its status needs a write: the next prunes are held
		// back for a whole Interval again.
		s.settled(ref)
	}
	stored := storedStatusDigest(status)
	old := status.DeepCopy()
	setStatus(status, view)
	quotaMetrics.set(ref, status, view)
	if statusDigest(status) == stored {
		return ctrl.Result{}, nil
	}
	if wait := s.writes.wait(ref, s.Interval, s.RateClock.Now()); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	if wait := s.settle(ref, view, obj.GetGeneration() == old.ObservedGeneration); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	// The whole status, on the resourceVersion read: a write from a stale cache fails
	// rather than replace a newer status. status.pruned, which the pruning controller
	// writes, goes back as read (setStatus keeps it), or the write fails on a newer one.
	if err := s.Client.Status().Update(ctx, statusOnly(obj, status)); err != nil {
		if kerrors.IsConflict(err) {
			// A newer copy is on its way to the cache; try again once it is there.
			return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	s.writes.wrote(ref, s.RateClock.Now())
	quotaMetrics.wrote(ref)
	s.transitionEvents(ctx, obj, old, status, view)
	return ctrl.Result{}, nil
}

// settle holds back, for at most one Interval, a status whose view has archives being
// pruned right now: the usage over the limit that it shows lasts only until the deletes
// are done, and the pass after them publishes the settled view, which is then written
// instead. That saves a status write for every archive that puts a scope over its limit.
// A status for a new generation is never held back (kubectl apply should show it at
// once), nor, after the Interval, one whose prunes do not get done (the quota then says
// it is pruning).
func (s *StatusWriter) settle(ref policy.Ref, view *QuotaView, observed bool) time.Duration {
	if !view.pruning() || !observed {
		s.settled(ref)
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.settling == nil {
		s.settling = map[policy.Ref]time.Time{}
	}
	until, ok := s.settling[ref]
	if !ok {
		until = s.RateClock.Now().Add(s.Interval)
		s.settling[ref] = until
	}
	return until.Sub(s.RateClock.Now())
}

// settled ends the hold of a quota whose view has no prunes in flight. Without it, a hold
// that ended with the status already up to date (the settled view shows what the status
// shows: nothing to write) was still running out when the next archive put the quota over
// its limit, and that status was written at once, then the settled one after it.
func (s *StatusWriter) settled(ref policy.Ref) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.settling, ref)
}

func (s *StatusWriter) forget(ref policy.Ref) {
	s.writes.forget(ref)
	s.mu.Lock()
	delete(s.settling, ref)
	s.mu.Unlock()
	quotaMetrics.forget(ref)
}

// splitPodScope reads "ns/pod" or "ns/pod/container".
func splitPodScope(scope string) (ns, pod string, ok bool) {
	parts := strings.Split(scope, "/")
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return "", "", false
	}
	return parts[0], parts[1], true
}
