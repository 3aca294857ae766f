package controllers

import (
	"context"
	"slices"
	"time"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// orphanOfIndex indexes the Checkpoints of orphans (archives whose namespace was gone
// when they were published, kept in the agent's namespace) by the namespace they count
// against, spec.archive.orphanOf. With the cache's namespace index it finds the
// Checkpoints of one namespace (checkpointStore.namespace) and costs an entry per orphan only,
// not one per Checkpoint.
const orphanOfIndex = "checkpointquota.dev/orphan-of"

// indexOrphanOf is the index function of orphanOfIndex.
func indexOrphanOf(o client.Object) []string {
	c, ok := o.(*cqv1.Checkpoint)
	if !ok || c.Spec.Archive == nil || c.Spec.Archive.OrphanOf == "" {
		return nil
	}
	return []string{c.Spec.Archive.OrphanOf}
}

// checkpointStore reads the cached Checkpoints as pointers to the cache's own objects: read
// only. client.List, even with UnsafeDisableDeepCopy, copies each object into the list's
// items, for every pass that computes everything (docs/quota-controller.md has the cost).
// Without the informer's store (a reconciler built directly on a client) it lists.
type checkpointStore struct {
	client client.Reader
	// store is the informer's store of Checkpoints, nil where the reconciler has no cache.
	store toolscache.Indexer
}

// all is every cached Checkpoint.
func (cs checkpointStore) all(ctx context.Context) ([]*cqv1.Checkpoint, error) {
	if cs.store == nil {
		var list cqv1.CheckpointList
		if err := cs.client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		return pointers(list.Items, nil), nil
	}
	return checkpointsOf(cs.store.List(), nil), nil
}

// namespace appends to out the cached Checkpoints that count against namespace ns
// (Checkpoint.PodNamespace): those in ns that are not orphans of another namespace, and the
// orphans of ns.
func (cs checkpointStore) namespace(ctx context.Context, ns string, out []*cqv1.Checkpoint) ([]*cqv1.Checkpoint, error) {
	var in []*cqv1.Checkpoint
	if cs.store == nil {
		var list cqv1.CheckpointList
		if err := cs.client.List(ctx, &list, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		in = pointers(list.Items, nil)
	} else {
		items, err := cs.store.ByIndex(toolscache.NamespaceIndex, ns)
		if err != nil {
			return nil, err
		}
		in = checkpointsOf(items, nil)
	}
	for _, c := range in {
		if c.PodNamespace() == ns {
			out = append(out, c)
		}
	}
	var orphans cqv1.CheckpointList
	if err := cs.client.List(ctx, &orphans, client.MatchingFields{orphanOfIndex: ns}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	return pointers(orphans.Items, out), nil
}

// pointers appends to out a pointer to each of items.
func pointers(items []cqv1.Checkpoint, out []*cqv1.Checkpoint) []*cqv1.Checkpoint {
	out = slices.Grow(out, len(items))
	for i := range items {
		out = append(out, &items[i])
	}
	return out
}

// checkpointsOf appends to out the Checkpoints among a store's items.
func checkpointsOf(items []any, out []*cqv1.Checkpoint) []*cqv1.Checkpoint {
	out = slices.Grow(out, len(items))
	for _, item := range items {
		if c, ok := item.(*cqv1.Checkpoint); ok {
			out = append(out, c)
		}
	}
	return out
}

// nsPart is the archives of one namespace (or, when a limit couples namespaces, of all:
// key ""), as a pass read them, and their computation.
type nsPart struct {
	live      []liveCheckpoint
	podStates []podState
	archives  []quota.Archive
	part      *quota.Part
	// stored, storedPodStates, storedArchives and remotePart are the same for the archives in
	// CheckpointStores, under the quotas' remoteLimits (prune_remote.go).
	stored          []liveCheckpoint
	storedPodStates []podState
	storedArchives  []quota.Archive
	remotePart      *quota.Part
}

// nextExpiry is the earliest time when a retention rule of the part's archives, on nodes
// or stored, starts to apply; zero when none will.
func (p *nsPart) nextExpiry() time.Time {
	var next time.Time
	if p.part != nil {
		next = p.part.NextExpiry
	}
	if p.remotePart != nil {
		next = earliest(next, p.remotePart.NextExpiry)
	}
	return next
}

// partCache is what the pruning controller keeps of its passes: each namespace's
// computation, so that a pass computes again only the namespaces that changed
// (incremental accounting). A change of any quota, a limit that couples namespaces
// (quota.Coupled) and the resync period make a pass compute everything.
type partCache struct {
	// enabled is set where the Checkpoints are indexed by orphanOfIndex
	// (SetupWithManager); a reconciler built directly computes everything every pass.
	enabled bool
	byKey   map[string]*nsPart
	// quotas fingerprints the quotas the parts were computed with.
	quotas   string
	lastFull time.Time
}

// current says whether the kept parts can serve the pass: computed with the same quotas,
// none coupling namespaces, and within the resync period.
func (c *partCache) current(s *passScope, resync time.Duration) bool {
	return c.enabled && c.byKey != nil && !s.coupled && c.quotas == s.quotas &&
		(resync <= 0 || s.now.Sub(c.lastFull) < resync)
}

// compute resolves and computes the parts the pass read, keeps them, and merges every
// part into the pass's input, governance and result.
func (r *PruneReconciler) compute(s *passScope) quota.Result {
	if s.full { // a pass that is not full found parts kept (partCache.current)
		r.parts.byKey = map[string]*nsPart{}
		r.parts.lastFull = s.now
	}
	r.parts.quotas = s.quotas
	for key, p := range s.fresh {
		if len(p.archives) == 0 && len(p.storedArchives) == 0 {
			delete(r.parts.byKey, key)
			continue
		}
		recomputedArchives.Add(float64(len(p.archives) + len(p.storedArchives)))
		labels := quota.Labels{Namespaces: s.nsLabels, Pod: r.podLabels(s), Unparsed: s.unparsed}
		in, res := quota.InputOf(s.policies, p.archives, labels, s.now)
		p.part = quota.ComputePart(in, res)
		p.remotePart = computeStored(s, p, labels)
		r.parts.byKey[key] = p
	}
	keys := make([]string, 0, len(r.parts.byKey))
	n := 0
	for key, p := range r.parts.byKey {
		keys = append(keys, key)
		n += len(p.live)
	}
	slices.Sort(keys)
	parts := make([]*quota.Part, len(keys))
	// Allocated once at its size: every pass merges every part, and growing the slice by
	// appends cost CPU on every pass (docs/quota-controller.md).
	s.live = make([]liveCheckpoint, 0, n)
	for i, key := range keys {
		p := r.parts.byKey[key]
		parts[i] = p.part
		s.live = append(s.live, p.live...)
	}
	var res quota.Result
	s.archives, s.governance, res = quota.Merge(s.policies, parts)
	r.mergeStored(s, keys)
	return res
}

// enablePartsIndex indexes Checkpoints by orphanOfIndex in the manager's cache and lets
// the passes keep their parts.
func (r *PruneReconciler) enablePartsIndex(ctx context.Context, indexer client.FieldIndexer) error {
	if err := indexer.IndexField(ctx, &cqv1.Checkpoint{}, orphanOfIndex, indexOrphanOf); err != nil {
		return err
	}
	r.parts.enabled = true
	return nil
}
