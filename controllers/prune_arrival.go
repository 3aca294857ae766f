package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/types"

	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// Arrivals: before a pass moves archives to a store, it computes the remote tier as it
// would be once they are there (docs/offload.md, "Remote limits", "Pruned on arrival"). An
// archive that the remote limits would prune from the store as soon as it arrived is
// deleted from its node instead: one delete, where a move cost an upload, a verification,
// a location write and then the same delete. The stored archives that the newcomers push
// out are left to the passes after their arrival, as before: nothing goes before the
// archives that replace it are stored.

// move is an archive of the plan that the pass moves to a store: asked for now, or in
// flight already (asked for by an earlier pass, not stored yet).
type move struct {
	prune    quota.Prune
	store    string
	inFlight bool
}

// prunedOnArrival returns, by the pass's archive index, the moves that the remote limits
// would prune as soon as they were stored, each as the remote limit's prune. The remote
// tier is computed, part by part, over the stored archives and those on their way: the
// moves, and the archives in flight whose stores take them (storeStuck says none stops
// them). An archive whose store does not take it now is neither counted on its way nor
// pruned on arrival: when in doubt, it moves.
func (r *PruneReconciler) prunedOnArrival(ctx context.Context, s *passScope, moves []move) map[int]quota.Prune {
	if len(s.remote.policies) == 0 || len(moves) == 0 {
		return nil
	}
	moving := map[types.UID]int{} // Checkpoint -> the pass's archive index
	keys := map[string]bool{}
	for _, m := range moves {
		c := s.live[m.prune.Archive]
		if r.storeStuck(s, c, m.store) != "" {
			continue
		}
		moving[c.UID] = m.prune.Archive
		keys[s.partKey(c.PodNamespace())] = true
	}
	var out map[int]quota.Prune
	for key := range keys {
		p := r.parts.byKey[key]
		if p == nil {
			continue
		}
		for _, pr := range r.arrive(ctx, s, p, moving) {
			if out == nil {
				out = map[int]quota.Prune{}
			}
			out[pr.Archive] = pr
		}
	}
	return out
}

// arrive computes the remote tier of part p with the archives on their way to it, and
// returns the prunes of those in moving, as prunes of the pass (archive indexes of s.live,
// quotas of s.policies).
func (r *PruneReconciler) arrive(ctx context.Context, s *passScope, p *nsPart, moving map[types.UID]int) []quota.Prune {
	archives := make([]quota.Archive, 0, len(p.storedArchives)+len(moving))
	archives = append(archives, p.storedArchives...)
	for _, c := range p.stored {
		r.learnNamespace(ctx, s, c.Checkpoint)
		r.podState(ctx, s, c.Checkpoint) // the pod's labels, for the quotas that select by label
	}
	arriving := map[int]int{} // index in archives -> the pass's archive index, for the moves
	for j, c := range p.live {
		i, moves := moving[c.UID]
		onItsWay := c.Status.Offload != nil && c.Status.Location == nil && c.DeletionTimestamp.IsZero() &&
			!c.IsPinned() && r.storeStuck(s, c, c.Status.Offload.Store) == ""
		if (!moves && !onItsWay) || p.archives[j].Copy {
			continue // a copy is never stored again (prune_offload.go)
		}
		r.learnNamespace(ctx, s, c.Checkpoint)
		r.podState(ctx, s, c.Checkpoint)
		if moves {
			arriving[len(archives)] = i
		}
		archives = append(archives, p.archives[j])
	}
	if len(arriving) == 0 {
		return nil
	}
	labels := quota.Labels{Namespaces: s.nsLabels, Pod: r.podLabels(s), Unparsed: s.unparsed}
	in, _ := quota.InputOf(s.remote.policies, archives, labels, s.now)
	var out []quota.Prune
	for _, pr := range quota.Compute(in).Prune {
		i, ok := arriving[pr.Archive]
		if !ok {
			continue // a stored archive that the newcomers push out: it goes once they are there
		}
		pr.Archive, pr.Quota = i, s.remote.of[pr.Quota]
		out = append(out, pr)
	}
	return out
}

// partKey is the key of the part that holds the archives counted against namespace ns.
func (s *passScope) partKey(ns string) string {
	if s.coupled {
		return ""
	}
	return ns
}

// atOnceReason is the reason of an archive deleted from its node because the remote
// limit would prune it from the store as soon as it was stored there.
func atOnceReason(remote, store string) string {
	return fmt.Sprintf("%s once stored: deleted from its node instead of moved to CheckpointStore %s", remote, store)
}
