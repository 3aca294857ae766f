package nodeagent

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// CheckpointCRD is the name of the Checkpoint CustomResourceDefinition.
var CheckpointCRD = "checkpoints." + cqv1.GroupVersion.Group

// witnessTTL is how long a looked-up UID is reused when publishing. Deciding whether a
// Checkpoint was deleted explicitly never reuses one: it always asks the apiserver.
const witnessTTL = 30 * time.Second

// presence is what a lookup found of one object.
type presence struct {
	// UID is empty when the object does not exist.
	UID types.UID
	// Deleting is true when the object has a deletion timestamp.
	Deleting bool
	at       time.Time
}

// Active says the object exists and is not being deleted.
func (p presence) Active() bool { return p.UID != "" && !p.Deleting }

// witnesses looks up, by metadata only, the objects whose identity tells why a Checkpoint
// disappeared: its namespace, the Checkpoint CRD and this agent's Node.
type witnesses struct {
	reader client.Reader
	node   string
	clock  clock.PassiveClock

	mu     sync.Mutex
	cached map[schema.GroupVersionKind]map[string]presence
}

func newWitnesses(reader client.Reader, node string, c clock.PassiveClock) *witnesses {
	return &witnesses{reader: reader, node: node, clock: c, cached: map[schema.GroupVersionKind]map[string]presence{}}
}

var (
	namespaceKind = corev1.SchemeGroupVersion.WithKind("Namespace")
	nodeKind      = corev1.SchemeGroupVersion.WithKind("Node")
	crdKind       = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}
)

// Namespace looks up a namespace; fresh skips the cache.
func (w *witnesses) Namespace(ctx context.Context, name string, fresh bool) (presence, error) {
	return w.lookup(ctx, namespaceKind, name, fresh)
}

// CRD looks up the Checkpoint CRD; fresh skips the cache.
func (w *witnesses) CRD(ctx context.Context, fresh bool) (presence, error) {
	return w.lookup(ctx, crdKind, CheckpointCRD, fresh)
}

// Node looks up this agent's Node; fresh skips the cache.
func (w *witnesses) Node(ctx context.Context, fresh bool) (presence, error) {
	return w.lookup(ctx, nodeKind, w.node, fresh)
}

func (w *witnesses) lookup(ctx context.Context, gvk schema.GroupVersionKind, name string, fresh bool) (presence, error) {
	now := w.clock.Now()
	if !fresh {
		w.mu.Lock()
		p, ok := w.cached[gvk][name]
		w.mu.Unlock()
		if ok && now.Sub(p.at) < witnessTTL {
			return p, nil
		}
	}
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(gvk)
	err := w.reader.Get(ctx, client.ObjectKey{Name: name}, obj)
	p := presence{at: now}
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return presence{}, fmt.Errorf("looking up %s %s: %w", gvk.Kind, name, err)
	default:
		p.UID, p.Deleting = obj.UID, !obj.DeletionTimestamp.IsZero()
	}
	w.mu.Lock()
	if w.cached[gvk] == nil {
		w.cached[gvk] = map[string]presence{}
	}
	w.cached[gvk][name] = p
	w.mu.Unlock()
	return p, nil
}
