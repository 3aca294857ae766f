package nodeagent

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/objstore"
)

// credentialsTTL is how long a store's client keeps the credentials it read: a rotated
// Secret is used within it.
const credentialsTTL = time.Minute

// storeClients keeps one client per CheckpointStore, made from the store's spec and its
// credentials Secret in the agent's namespace, read by name (the agent neither lists nor
// watches Secrets).
type storeClients struct {
	secrets   client.Reader
	namespace string
	// buffers bound the memory of the uploads to every store together.
	buffers *objstore.Buffers

	mu      sync.Mutex
	clients map[string]*storeClient
}

type storeClient struct {
	uid        types.UID
	generation int64
	read       time.Time
	store      *objstore.Store
}

func newStoreClients(secrets client.Reader, namespace string) *storeClients {
	return &storeClients{secrets: secrets, namespace: namespace, clients: map[string]*storeClient{},
		buffers: objstore.NewBuffers(OffloadBufferBytes)}
}

// get returns the store and its client; cache reads the CheckpointStore.
func (s *storeClients) get(ctx context.Context, cache client.Reader, name string) (*cqv1.CheckpointStore, *objstore.Store, error) {
	var store cqv1.CheckpointStore
	switch err := cache.Get(ctx, client.ObjectKey{Name: name}, &store); {
	case apierrors.IsNotFound(err):
		return nil, nil, fmt.Errorf("CheckpointStore %q does not exist", name)
	case err != nil:
		return nil, nil, err
	}
	s.mu.Lock()
	c := s.clients[name]
	s.mu.Unlock()
	if c != nil && c.uid == store.UID && c.generation == store.Generation && time.Since(c.read) < credentialsTTL {
		return &store, c.store, nil
	}
	var secret corev1.Secret
	ref := client.ObjectKey{Namespace: s.namespace, Name: store.Spec.CredentialsSecret.Name}
	if err := s.secrets.Get(ctx, ref, &secret); err != nil {
		return nil, nil, fmt.Errorf("reading the credentials of CheckpointStore %s, Secret %s: %w", name, ref, err)
	}
	id, key := string(secret.Data[cqv1.StoreSecretAccessKeyID]), string(secret.Data[cqv1.StoreSecretSecretAccessKey])
	if id == "" || key == "" {
		return nil, nil, fmt.Errorf("the credentials Secret %s of CheckpointStore %s needs the keys %s and %s",
			ref, name, cqv1.StoreSecretAccessKeyID, cqv1.StoreSecretSecretAccessKey)
	}
	st, err := objstore.New(objstore.Config{Spec: store.Spec, AccessKeyID: id, SecretAccessKey: key, Buffers: s.buffers})
	if err != nil {
		return nil, nil, fmt.Errorf("CheckpointStore %s: %w", name, err)
	}
	s.mu.Lock()
	s.clients[name] = &storeClient{uid: store.UID, generation: store.Generation, read: time.Now(), store: st}
	s.mu.Unlock()
	return &store, st, nil
}

// setupOffloader adds the Offloader to mgr: keyed by Checkpoint, for the Checkpoints that
// the manager asked to move or that were moved, retrying a failed upload with backoff.
func setupOffloader(mgr manager.Manager, cfg Config, stores *storeClients, checks *storeChecker, fromStore *pathSet) (*Offloader, error) {
	o := &Offloader{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("checkpoint-node-agent"),
		Config: cfg, stores: stores, checks: checks, stored: map[types.NamespacedName]storedObject{}, fromStore: fromStore}
	if err := o.openStored(); err != nil {
		// The objects it named stay in the store; everything else works.
		mgr.GetLogger().Error(err, "Ignored the agent's record of stored archives")
	}
	if err := mgr.Add(storedSweep{o: o}); err != nil {
		return nil, err
	}
	if err := mgr.Add(bucketSweep{o: o}); err != nil {
		return nil, err
	}
	offloading := predicate.NewPredicateFuncs(func(obj client.Object) bool {
		c, ok := obj.(*cqv1.Checkpoint)
		return ok && (c.Status.Offload != nil || c.Status.Location != nil)
	})
	retries := make(chan event.GenericEvent, 1024)
	checks.onBack(func(store string) { o.retryFailed(store, retries) })
	return o, builder.ControllerManagedBy(mgr).
		Named("checkpoint-offload").
		For(&cqv1.Checkpoint{}, builder.WithPredicates(offloading)).
		WatchesRawSource(source.Channel(retries, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: cfg.OffloadWorkers,
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](cfg.OffloadRetryBase, cfg.OffloadRetryMax),
		}).
		Complete(o)
}

// retryFailed queues at once the uploads to store that failed, once the store passes its
// check again; a full queue leaves the rest to their backoff.
func (o *Offloader) retryFailed(store string, to chan<- event.GenericEvent) {
	var list cqv1.CheckpointList
	if err := o.Client.List(context.Background(), &list); err != nil {
		return
	}
	for i := range list.Items {
		c := &list.Items[i]
		if c.Status.Offload == nil || c.Status.Offload.Store != store || c.Status.Location != nil ||
			!meta.IsStatusConditionTrue(c.Status.Conditions, cqv1.CheckpointConditionOffloadFailed) {
			continue
		}
		select {
		case to <- event.GenericEvent{Object: c}:
		default:
			return
		}
	}
}
