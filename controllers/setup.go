package controllers

import (
	"context"
	"errors"
	"time"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// Options configure the controllers.
type Options struct {
	// Clock times retention rules and grace periods; nil is the wall clock.
	Clock clock.WithTicker
	// ResyncPeriod is the period of a full recompute without any change; 0 turns it off.
	ResyncPeriod time.Duration
	// NodeGracePeriod is how long a node must be gone before its Checkpoints are released; 0 never releases.
	NodeGracePeriod time.Duration
	// PruneConcurrency bounds the deletes in flight.
	PruneConcurrency int
	// StatusInterval is the least time between two status writes of one quota, and
	// between two writes of its status.pruned before a pass's deletes.
	StatusInterval time.Duration
	// BatchDelay is how long a change waits for others before the usage is recomputed.
	BatchDelay time.Duration
	// Policies holds the quotas' parsed policies, shared with admission; nil: the pruning
	// controller's own.
	Policies *policy.Parsed
}

// DefaultOptions are the manager's defaults.
var DefaultOptions = Options{
	ResyncPeriod:     10 * time.Minute,
	NodeGracePeriod:  time.Hour,
	PruneConcurrency: 64,
	StatusInterval:   time.Second,
	BatchDelay:       200 * time.Millisecond,
}

// Setup registers the pruning controller, the release of gone nodes' Checkpoints (unless
// NodeGracePeriod is 0) and both quota controllers with the manager. ctx bounds the setup
// itself (the cache's indexes and informers), not the controllers, which run until the
// manager stops.
func Setup(ctx context.Context, mgr ctrl.Manager, o Options) (*ViewStore, error) {
	if mgr == nil {
		return nil, errors.New("a manager is required")
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	views := NewViewStore()
	// The core events recorder: it keeps distinct messages apart ("Pruned 3 of shop/a", "Pruned 2
	// of shop/b"), where events.k8s.io series would fold them into the first one.
	recorder := mgr.GetEventRecorderFor("checkpoint-quota") //nolint:staticcheck
	quotaUpdates, clusterUpdates := make(chan event.GenericEvent, 64), make(chan event.GenericEvent, 64)
	status := &StatusWriter{Client: mgr.GetClient(), Views: views, Recorder: recorder,
		Interval: o.StatusInterval, RateClock: clock.RealClock{}}
	deletes, err := withMetadataDeletes(mgr.GetClient(), mgr.GetConfig())
	if err != nil {
		return nil, err
	}
	if err := (&PruneReconciler{
		Client: deletes, APIReader: mgr.GetAPIReader(), Views: views, Recorder: recorder, Clock: o.Clock,
		RateClock: clock.RealClock{}, ResyncPeriod: o.ResyncPeriod, Concurrency: o.PruneConcurrency, BatchDelay: o.BatchDelay,
		CountInterval: o.StatusInterval,
		QuotaUpdates:  quotaUpdates, ClusterQuotaUpdates: clusterUpdates, Policies: o.Policies,
	}).SetupWithManager(ctx, mgr); err != nil {
		return nil, err
	}
	if o.NodeGracePeriod > 0 {
		if err := (&NodeReleaseReconciler{
			Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Views: views, Clock: o.Clock,
			NodeGracePeriod: o.NodeGracePeriod, ResyncPeriod: o.ResyncPeriod,
		}).SetupWithManager(ctx, mgr); err != nil {
			return nil, err
		}
	}
	if err := (&CheckpointQuotaReconciler{Client: mgr.GetClient(), Status: status, Updates: quotaUpdates}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := (&ClusterCheckpointQuotaReconciler{Client: mgr.GetClient(), Status: status, Updates: clusterUpdates}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := (&StoreStatusReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	return views, nil
}
