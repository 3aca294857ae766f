package controllers

import (
	"context"
	"slices"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// orphanOfIndex indexes the Checkpoints of orphans (archives whose namespace was gone
// when they were published, kept in the agent's namespace) by the namespace they count
// against, spec.archive.orphanOf. With the cache's namespace index it finds the
// Checkpoints of one namespace (namespaceCheckpoints) and costs an entry per orphan only,
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

// namespaceCheckpoints appends to out the cached Checkpoints that count against namespace
// ns (Checkpoint.PodNamespace): those in ns that are not orphans of another namespace, and
// the orphans of ns. They share the cache's objects: read only.
func namespaceCheckpoints(ctx context.Context, c client.Reader, ns string, out []cqv1.Checkpoint) ([]cqv1.Checkpoint, error) {
	var in, orphans cqv1.CheckpointList
	if err := c.List(ctx, &in, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	out = slices.Grow(out, len(in.Items))
	for i := range in.Items {
		if in.Items[i].PodNamespace() == ns {
			out = append(out, in.Items[i])
		}
	}
	if err := c.List(ctx, &orphans, client.MatchingFields{orphanOfIndex: ns}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	return append(out, orphans.Items...), nil
}

// nsPart is the archives of one namespace (or, when a limit couples namespaces, of all:
// key ""), as a pass read them, and their computation.
type nsPart struct {
	live      []liveCheckpoint
	podStates []podState
	archives  []quota.Archive
	part      *quota.Part
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
// part into the pass's input, resolution and result.
func (r *PruneReconciler) compute(s *passScope) quota.Result {
	if s.full { // a pass that is not full found parts kept (partCache.current)
		r.parts.byKey = map[string]*nsPart{}
		r.parts.lastFull = s.now
	}
	r.parts.quotas = s.quotas
	for key, p := range s.fresh {
		if len(p.archives) == 0 {
			delete(r.parts.byKey, key)
			continue
		}
		recomputedArchives.Add(float64(len(p.archives)))
		in, res := quota.InputOf(s.policies, p.archives, s.nsLabels, s.pods, s.now)
		p.part = quota.ComputePart(in, res)
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
	// Allocated once at its size: every pass merges every part, and growing a slice of
	// 100,000 records by appends was a tenth of the manager's CPU under a memory limit.
	s.live = make([]liveCheckpoint, 0, n)
	for i, key := range keys {
		p := r.parts.byKey[key]
		parts[i] = p.part
		s.live = append(s.live, p.live...)
	}
	var res quota.Result
	s.input, s.resolution, res = quota.Merge(s.policies, parts)
	s.input.Now = s.now
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
