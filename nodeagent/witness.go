package nodeagent

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
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
// Checkpoint was deleted explicitly never reuses one that started before the deletion was
// observed.
const witnessTTL = 30 * time.Second

// lookupInterval is the least time between the starts of two lookups of one witness. A
// lookup answers every deletion observed before it started, so while a prune deletes
// thousands of Checkpoints, each witness is asked about ten times a second, not once
// per Checkpoint; a lone delete is asked about at once.
const lookupInterval = 100 * time.Millisecond

// lookupTimeout bounds one lookup, which no single reconcile owns.
const lookupTimeout = 30 * time.Second

// mark is a point in the order in which the agent observes deletions and starts lookups:
// a lookup whose mark is greater than a deletion's started after the agent observed it,
// so it saw the witness as it was after the deletion.
type mark uint64

// anyRecent asks for a lookup no older than witnessTTL, whenever it started: publishing
// needs no fresher witness.
const anyRecent mark = 0

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
// disappeared: its namespace, the Checkpoint CRD and this agent's Node. Lookups of one
// object are coalesced: one at a time, at most one per lookupInterval, each answering
// every caller whose deletion was observed before it started.
type witnesses struct {
	reader client.Reader
	node   string
	clock  clock.PassiveClock

	marks atomic.Uint64
	// requests counts the lookups sent to the apiserver (tests).
	requests atomic.Int64

	mu      sync.Mutex
	objects map[witnessKey]*witnessed
}

type witnessKey struct {
	kind schema.GroupVersionKind
	name string
}

// witnessed is what the agent knows of one witness.
type witnessed struct {
	// last is the latest lookup that succeeded, or nil.
	last *lookup
	// next is the lookup waiting for its turn or under way, or nil.
	next *lookup
	// lastStart is when the latest lookup started.
	lastStart time.Time
}

// lookup is one GET of a witness. Its fields are written before done is closed and only
// read after.
type lookup struct {
	// started is the lookup's mark, 0 until it starts.
	started mark
	done    chan struct{}
	found   presence
	err     error
}

func newWitnesses(reader client.Reader, node string, c clock.PassiveClock) *witnesses {
	return &witnesses{reader: reader, node: node, clock: c, objects: map[witnessKey]*witnessed{}}
}

var (
	namespaceKind = corev1.SchemeGroupVersion.WithKind("Namespace")
	nodeKind      = corev1.SchemeGroupVersion.WithKind("Node")
	crdKind       = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}
)

// mark returns the next mark: the moment a deletion is observed.
func (w *witnesses) mark() mark { return mark(w.marks.Add(1)) }

// Namespace looks up a namespace with a lookup that started after the mark after.
func (w *witnesses) Namespace(ctx context.Context, name string, after mark) (presence, error) {
	return w.lookup(ctx, witnessKey{namespaceKind, name}, after)
}

// CRD looks up the Checkpoint CRD with a lookup that started after the mark after.
func (w *witnesses) CRD(ctx context.Context, after mark) (presence, error) {
	return w.lookup(ctx, witnessKey{crdKind, CheckpointCRD}, after)
}

// Node looks up this agent's Node with a lookup that started after the mark after.
func (w *witnesses) Node(ctx context.Context, after mark) (presence, error) {
	return w.lookup(ctx, witnessKey{nodeKind, w.node}, after)
}

func (w *witnesses) lookup(ctx context.Context, key witnessKey, after mark) (presence, error) {
	w.mu.Lock()
	o := w.objects[key]
	if o == nil {
		o = &witnessed{}
		w.objects[key] = o
	}
	for {
		if l := o.last; l != nil && w.answers(l, after) {
			w.mu.Unlock()
			return l.found, nil
		}
		l := o.next
		if l == nil {
			l = &lookup{done: make(chan struct{})}
			o.next = l
			go w.run(key, o, l, o.lastStart.Add(lookupInterval))
		}
		tooOld := l.started != 0 && l.started <= after
		w.mu.Unlock()
		select {
		case <-l.done:
		case <-ctx.Done():
			return presence{}, ctx.Err()
		}
		if !tooOld {
			return l.found, l.err
		}
		// Under way already when the deletion was observed: the next lookup answers it.
		w.mu.Lock()
	}
}

// answers says whether the lookup l, which succeeded, answers a caller asking for a lookup
// that started after the mark after.
func (w *witnesses) answers(l *lookup, after mark) bool {
	if after == anyRecent {
		return w.clock.Since(l.found.at) < witnessTTL
	}
	return l.started > after
}

// run performs the lookup l of key once lookupInterval has passed since the previous one.
func (w *witnesses) run(key witnessKey, o *witnessed, l *lookup, notBefore time.Time) {
	if wait := time.Until(notBefore); wait > 0 {
		time.Sleep(wait)
	}
	w.mu.Lock()
	l.started = w.mark()
	o.lastStart = time.Now()
	w.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	found, err := w.get(ctx, key)
	cancel()

	w.mu.Lock()
	l.found, l.err = found, err
	if err == nil {
		o.last = l
	}
	o.next = nil
	close(l.done)
	w.mu.Unlock()
}

// get asks the apiserver, never a cache.
func (w *witnesses) get(ctx context.Context, key witnessKey) (presence, error) {
	w.requests.Add(1)
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(key.kind)
	err := w.reader.Get(ctx, client.ObjectKey{Name: key.name}, obj)
	p := presence{at: w.clock.Now()}
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return presence{}, fmt.Errorf("looking up %s %s: %w", key.kind.Kind, key.name, err)
	default:
		p.UID, p.Deleting = obj.UID, !obj.DeletionTimestamp.IsZero()
	}
	return p, nil
}
