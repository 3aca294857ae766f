package nodeagent

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/source"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
)

// The agent's permissions. They are generated into the agent's own Role, apart from the manager's.
// +kubebuilder:rbac:groups=checkpointquota.dev,resources=checkpoints,verbs=get;list;watch;create;update;patch;delete;pin
// +kubebuilder:rbac:groups=checkpointquota.dev,resources=checkpoints/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get
// +kubebuilder:rbac:groups=checkpointquota.dev,resources=checkpointstores,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,resourceNames=checkpoints.checkpointquota.dev,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Scheme knows the kinds the agent reads and writes.
var Scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(Scheme))
	utilruntime.Must(cqv1.AddToScheme(Scheme))
}

// ManagerOptions are the process-level settings of an agent.
type ManagerOptions struct {
	// MetricsBindAddress serves the Prometheus metrics; "0" turns the endpoint off.
	MetricsBindAddress string
	// HealthProbeBindAddress serves /healthz and /readyz; "" or "0" turns them off.
	HealthProbeBindAddress string
	// PprofBindAddress serves Go's pprof endpoints; "" or "0" turns them off.
	PprofBindAddress string
	// Logger is the manager's logger; empty means controller-runtime's global one.
	Logger logr.Logger
}

// NewManager returns a controller-runtime manager that runs the agent for cfg: it caches
// only the Checkpoints of cfg.NodeName and runs the directory watcher and the reconciler.
// ctx bounds the setup, not the manager, which runs until the context of its Start ends.
func NewManager(ctx context.Context, restConfig *rest.Config, cfg Config, opts ManagerOptions) (manager.Manager, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	mgr, err := manager.New(restConfig, manager.Options{
		Scheme:                 Scheme,
		Logger:                 opts.Logger,
		Metrics:                metricsserver.Options{BindAddress: opts.MetricsBindAddress},
		HealthProbeBindAddress: opts.HealthProbeBindAddress,
		PprofBindAddress:       opts.PprofBindAddress,
		Cache: cache.Options{
			// Managed fields are much of a cached Checkpoint; the agent never reads them.
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				&cqv1.Checkpoint{}: {Field: fields.OneTermEqualSelector(cqv1.FieldArchiveNode, cfg.NodeName)},
			},
		},
		// Tests run several agents, and restart them, in one process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return nil, err
	}
	if err := Setup(ctx, mgr, cfg); err != nil {
		return nil, err
	}
	return mgr, nil
}

// Setup adds the agent for cfg to mgr, whose cache must hold only cfg.NodeName's
// Checkpoints. ctx bounds the setup (the cache's index).
func Setup(ctx context.Context, mgr manager.Manager, cfg Config) error {
	if mgr == nil {
		return errors.New("nodeagent.Setup needs a manager")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &cqv1.Checkpoint{}, indexFile, func(o client.Object) []string {
		if k, ok := keyOf(o.(*cqv1.Checkpoint)); ok {
			return []string{k.Path()}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing Checkpoints by archive: %w", err)
	}

	recs, bad, err := openRecords(cfg.StateDir)
	if err != nil {
		return err
	}
	copies, err := openCopies(cfg.StateDir)
	if err != nil {
		// A copy is then published as an archive of its own: kept, counted, freed in turn.
		mgr.GetLogger().Error(err, "Ignored the agent's record of fetched copies")
	}
	for _, e := range bad {
		// Its archive is published again and kept: a lost record only forgets a delete.
		mgr.GetLogger().Error(e, "Ignored an unreadable record of the agent")
	}
	state := newNodeState()
	r := &Reconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("checkpoint-node-agent"),
		Config:    cfg,
		cache:     archive.NewCache(),
		state:     state,
		records:   recs,
		witnesses: newWitnesses(mgr.GetAPIReader(), cfg.NodeName, cfg.Clock),
		deletions: newObservedDeletions(),
		fromStore: newPathSet(),
		copies:    copies,
	}
	files := make(chan event.TypedGenericEvent[fileKey], 1024)
	r.legacy = newLegacyObjects(mgr.GetAPIReader(), cfg.NodeName, cfg.StateDir, files)
	if err := mgr.Add(r.legacy); err != nil {
		return err
	}
	// The informer lists again after its watch broke off; what was created and deleted in
	// between it never shows, and no event comes for it (watcher.sendUnseen).
	relisted := make(chan struct{}, 1)
	w := &watcher{cfg: cfg, events: files, recorded: recs.paths, unseen: r.unseenRecords, recheck: relisted,
		log: mgr.GetLogger().WithName("watcher").WithValues("node", cfg.NodeName)}
	if err := mgr.Add(w); err != nil {
		return err
	}
	if err := mgr.Add(&metricsRunnable{collector: newCollector(cfg.NodeName, state)}); err != nil {
		return err
	}
	stores := newStoreClients(mgr.GetAPIReader(), cfg.OrphanNamespace)
	checker := newStoreChecker(mgr.GetClient(), stores, cfg)
	if err := mgr.Add(checker); err != nil {
		return err
	}
	reporter := newNodeReporter(mgr.GetClient(), mgr.GetAPIReader(), cfg, state)
	reporter.checks = checker
	if err := mgr.Add(reporter); err != nil {
		return err
	}

	enqueueKey := handler.TypedFuncs[fileKey, fileKey]{
		GenericFunc: func(_ context.Context, e event.TypedGenericEvent[fileKey], q workqueue.TypedRateLimitingInterface[fileKey]) {
			q.Add(e.Object)
		},
	}
	enqueueObject := handler.TypedEnqueueRequestsFromMapFunc(func(_ context.Context, obj *cqv1.Checkpoint) []fileKey {
		// The cache holds only this node's Checkpoints.
		if k, ok := keyOf(obj); ok {
			return []fileKey{k}
		}
		return nil
	})
	// The arrival of a Checkpoint this agent created and recorded for its archive tells the
	// agent nothing it does not know: the reconcile that created it wrote the record after
	// the create succeeded. Any later change to the object or the file comes as an event of
	// its own.
	enqueueObject = ownArrivalsSkipped(enqueueObject, recs)
	enqueueObject = deletionsObserved(enqueueObject, recs, r.deletions, r.witnesses)
	enqueueObject = relistsSignalled(enqueueObject, relisted)
	o, err := setupOffloader(mgr, cfg, stores, checker, r.fromStore)
	if err != nil {
		return err
	}
	if err := setupCopyFetcher(mgr, o, r.copies, files); err != nil {
		return err
	}
	return builder.TypedControllerManagedBy[fileKey](mgr).
		Named("checkpoint-archive").
		WithOptions(controller.TypedOptions[fileKey]{MaxConcurrentReconciles: cfg.Workers}).
		WatchesRawSource(source.TypedChannel(files, enqueueKey)).
		WatchesRawSource(source.TypedKind(mgr.GetCache(), &cqv1.Checkpoint{}, enqueueObject)).
		Complete(r)
}

// ownArrivalsSkipped passes on every event but the creation of a Checkpoint whose UID the
// records already hold for its archive.
func ownArrivalsSkipped(h handler.TypedEventHandler[*cqv1.Checkpoint, fileKey], recs *records) handler.TypedEventHandler[*cqv1.Checkpoint, fileKey] {
	return handler.TypedFuncs[*cqv1.Checkpoint, fileKey]{
		CreateFunc: func(ctx context.Context, e event.TypedCreateEvent[*cqv1.Checkpoint], q workqueue.TypedRateLimitingInterface[fileKey]) {
			if k, ok := keyOf(e.Object); ok && e.Object.Spec.Archive != nil {
				if rec := recs.get(k.Path()); rec != nil && rec.UID == e.Object.UID {
					return
				}
			}
			h.Create(ctx, e, q)
		},
		UpdateFunc:  h.Update,
		DeleteFunc:  h.Delete,
		GenericFunc: h.Generic,
	}
}

// deletionsObserved notes, before passing it on, each deletion of a recorded Checkpoint the
// watch delivers: its removal, or the deletion timestamp set while another finalizer holds
// it. That is what tells the agent the Checkpoint's fate without asking the apiserver
// (whyGone). A removal the informer only inferred from a relist (DeleteStateUnknown) is not
// noted: the agent asks.
func deletionsObserved(h handler.TypedEventHandler[*cqv1.Checkpoint, fileKey], recs *records, d *observedDeletions, w *witnesses) handler.TypedEventHandler[*cqv1.Checkpoint, fileKey] {
	observe := func(obj *cqv1.Checkpoint) {
		if k, ok := keyOf(obj); ok {
			if rec := recs.get(k.Path()); rec != nil && rec.UID == obj.UID {
				d.observe(k.Path(), obj.UID, w.mark())
			}
		}
	}
	return handler.TypedFuncs[*cqv1.Checkpoint, fileKey]{
		CreateFunc: h.Create,
		UpdateFunc: func(ctx context.Context, e event.TypedUpdateEvent[*cqv1.Checkpoint], q workqueue.TypedRateLimitingInterface[fileKey]) {
			if e.ObjectOld.DeletionTimestamp.IsZero() && !e.ObjectNew.DeletionTimestamp.IsZero() {
				observe(e.ObjectNew)
			}
			h.Update(ctx, e, q)
		},
		DeleteFunc: func(ctx context.Context, e event.TypedDeleteEvent[*cqv1.Checkpoint], q workqueue.TypedRateLimitingInterface[fileKey]) {
			if !e.DeleteStateUnknown {
				observe(e.Object)
			}
			h.Delete(ctx, e, q)
		},
		GenericFunc: h.Generic,
	}
}

// relistsSignalled passes every event on, and signals relisted (without blocking) on an
// update that changes nothing, which is what a relist (or a resync) of the informer
// delivers for the objects still there.
func relistsSignalled(h handler.TypedEventHandler[*cqv1.Checkpoint, fileKey], relisted chan<- struct{}) handler.TypedEventHandler[*cqv1.Checkpoint, fileKey] {
	return handler.TypedFuncs[*cqv1.Checkpoint, fileKey]{
		CreateFunc: h.Create,
		UpdateFunc: func(ctx context.Context, e event.TypedUpdateEvent[*cqv1.Checkpoint], q workqueue.TypedRateLimitingInterface[fileKey]) {
			if e.ObjectOld.ResourceVersion == e.ObjectNew.ResourceVersion {
				select {
				case relisted <- struct{}{}:
				default:
				}
			}
			h.Update(ctx, e, q)
		},
		DeleteFunc:  h.Delete,
		GenericFunc: h.Generic,
	}
}

// keyOf returns the archive a Checkpoint stands for.
func keyOf(obj *cqv1.Checkpoint) (fileKey, bool) {
	if a := obj.Spec.Archive; a != nil {
		return fileKey{Dir: a.Directory, Name: a.FileName}, true
	}
	// Published by an agent before spec.archive, and not yet adopted.
	if p := obj.Annotations[cqv1.LegacyAnnotationFile]; p != "" {
		return keyFromPath(p), true
	}
	return fileKey{}, false
}

// metricsRunnable registers the node's collector while the agent runs, so that an agent
// restarted in the same process registers again.
type metricsRunnable struct{ collector prometheus.Collector }

func (m *metricsRunnable) NeedLeaderElection() bool { return false }

func (m *metricsRunnable) Start(ctx context.Context) error {
	if err := metrics.Registry.Register(m.collector); err != nil {
		return fmt.Errorf("registering the node's metrics: %w", err)
	}
	<-ctx.Done()
	metrics.Registry.Unregister(m.collector)
	return nil
}
