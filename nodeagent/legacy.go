package nodeagent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// legacyObjects are this node's Checkpoints that agents before spec.archive published.
// Having no spec.archive, they are not in the agent's cache, which selects its node by
// spec.archive.nodeName. At start the agent lists them once, by the node label those
// agents set, and sends their archives to the reconciler, which reads them directly
// (objectsFor) until it has adopted them: from then on the cache holds them. A start that
// finds none leaves a marker in the state directory, and later starts do not list again:
// the apiserver filters a list by label by reading every Checkpoint it holds, and a
// DaemonSet rollout starts every agent.
type legacyObjects struct {
	reader client.Reader
	node   string
	files  chan<- event.TypedGenericEvent[fileKey]
	// marker is the file that says no legacy object is left on this node.
	marker string

	mu     sync.Mutex
	byPath map[string][]types.NamespacedName
}

func newLegacyObjects(reader client.Reader, node, stateDir string, files chan<- event.TypedGenericEvent[fileKey]) *legacyObjects {
	return &legacyObjects{reader: reader, node: node, files: files, marker: filepath.Join(stateDir, legacyMarkerName),
		byPath: map[string][]types.NamespacedName{}}
}

// legacyMarkerName is the marker, in the state directory, of a node without legacy objects.
const legacyMarkerName = "no-legacy-checkpoints"

// NeedLeaderElection is false: every agent adopts its own node's objects.
func (l *legacyObjects) NeedLeaderElection() bool { return false }

// Start lists the legacy objects, retrying while the apiserver fails, and queues their
// archives. Until the list succeeds they are only left as they are: counted against no
// quota, never pruned, and their files kept.
func (l *legacyObjects) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("legacy").WithValues("node", l.node)
	if _, err := os.Stat(l.marker); err == nil {
		return nil
	}
	var list cqv1.CheckpointList
	backoff := wait.Backoff{Duration: time.Second, Factor: 2, Cap: time.Minute, Steps: 1 << 30}
	err := wait.ExponentialBackoffWithContext(ctx, backoff, func(ctx context.Context) (bool, error) {
		err := l.reader.List(ctx, &list, client.MatchingLabels{cqv1.LegacyLabelNode: labelValue(l.node)})
		if err != nil {
			log.Error(err, "Could not list the Checkpoints of earlier agents on this node, to adopt them; retrying")
		}
		return err == nil, nil
	})
	if err != nil {
		return nil // stopped before the list succeeded
	}
	var keys []fileKey
	l.mu.Lock()
	for i := range list.Items {
		obj := &list.Items[i]
		if obj.Spec.Archive != nil {
			continue // the cache holds it
		}
		k, ok := keyOf(obj)
		if !ok {
			continue
		}
		l.byPath[k.Path()] = append(l.byPath[k.Path()], client.ObjectKeyFromObject(obj))
		keys = append(keys, k)
	}
	l.mu.Unlock()
	if len(keys) == 0 {
		if err := os.WriteFile(l.marker, nil, 0o600); err != nil {
			log.Error(err, "Could not write the marker of a node without legacy Checkpoints; the next start lists them again")
		}
		return nil
	}
	log.Info("Adopting the Checkpoints that an agent before spec.archive published", "count", len(keys))
	for _, k := range keys {
		select {
		case l.files <- event.TypedGenericEvent[fileKey]{Object: k}:
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// add returns cached, the archive k's Checkpoints in the cache, with the legacy objects
// of k that the cache does not hold yet, read from the apiserver. A legacy object is
// forgotten once it is gone or the cache holds it (adopted).
func (l *legacyObjects) add(ctx context.Context, k fileKey, cached []*cqv1.Checkpoint) ([]*cqv1.Checkpoint, error) {
	if l == nil {
		return cached, nil
	}
	l.mu.Lock()
	keys := l.byPath[k.Path()]
	l.mu.Unlock()
	if len(keys) == 0 {
		return cached, nil
	}
	var keep []types.NamespacedName
	for _, key := range keys {
		obj := &cqv1.Checkpoint{}
		err := l.reader.Get(ctx, key, obj)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading Checkpoint %s, published by an earlier agent: %w", key, err)
		}
		if hasUID(cached, obj.UID) { // the cache holds it: adopted
			continue
		}
		keep = append(keep, key)
		cached = append(cached, obj)
	}
	l.mu.Lock()
	if len(keep) == 0 {
		delete(l.byPath, k.Path())
	} else {
		l.byPath[k.Path()] = keep
	}
	l.mu.Unlock()
	return cached, nil
}
