package controllers

import (
	"context"
	"slices"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// The remote tier. An offloaded archive (status.location) is no longer on its node: it
// counts against the quotas' remoteLimits instead, which a pass computes as it computes the
// node limits, with the quotas' remote twins (quota.Remote) over the stored archives, part
// by part. What they prune goes into the same plan: the pass deletes the Checkpoint, as for
// any prune, and the node agent that stored the archive deletes the object when it sees
// the Checkpoint go (docs/offload.md, "Remote limits"). The manager never reads a store.

// remoteScope is what a pass learns of the remote tier.
type remoteScope struct {
	// policies are the twins of the quotas that set remoteLimits; of[i] is the index, in
	// the pass's policies, of the quota whose twin policies[i] is.
	policies []*policy.Quota
	of       []int
	// start is where the stored archives' Checkpoints begin in passScope.live.
	start      int
	archives   []*quota.Archive
	governance *quota.Governance
	result     quota.Result
}

// twin is the index of quota qi's twin, -1 when the quota sets no remoteLimits.
func (rs *remoteScope) twin(qi int) int {
	return slices.Index(rs.of, qi)
}

// addStored adds an offloaded Checkpoint to its part, when some quota sets remoteLimits or
// an orphan rule; its pod is looked up, whose labels a podSelector resolves and whose
// absence makes the archive an orphan, timed from when this manager first saw it so, on
// its node or in the store (remember).
func (r *PruneReconciler) addStored(ctx context.Context, s *passScope, p *nsPart, c *cqv1.Checkpoint) {
	if len(s.remote.policies) == 0 {
		return
	}
	r.learnNamespace(ctx, s, c)
	a, _ := quota.ArchiveOf(c) // spec.archive is set: the caller checked
	a.Copy = false             // a copy fetched back to its node is one on the node, not in the store
	p.stored = append(p.stored, liveOf(c))
	p.storedPodStates = append(p.storedPodStates, r.podState(ctx, s, c))
	p.storedArchives = append(p.storedArchives, a)
}

// computeStored computes the part's stored archives under the quotas' twins; nil when
// there are none, or no twins.
func computeStored(s *passScope, p *nsPart, labels quota.Labels) *quota.Part {
	if len(s.remote.policies) == 0 || len(p.storedArchives) == 0 {
		return nil
	}
	in, res := quota.InputOf(s.remote.policies, p.storedArchives, labels, s.now)
	return quota.ComputePart(in, res)
}

// mergeStored merges the remote parts, in the order of the parts' keys, and puts their
// Checkpoints after the others in s.live.
func (r *PruneReconciler) mergeStored(s *passScope, keys []string) {
	if len(s.remote.policies) == 0 {
		return
	}
	s.remote.start = len(s.live)
	var parts []*quota.Part
	for _, key := range keys {
		if p := r.parts.byKey[key]; p.remotePart != nil {
			parts = append(parts, p.remotePart)
			s.live = append(s.live, p.stored...)
		}
	}
	s.remote.archives, s.remote.governance, s.remote.result = quota.Merge(s.remote.policies, parts)
}

// limitRemote adds to res what the remote limits prune, as prunes of the quotas whose twins
// prune them, and the time when the next stored archive reaches a remote maxAge.
func (r *PruneReconciler) limitRemote(s *passScope, res *quota.Result) {
	for _, p := range s.remote.result.Prune {
		res.Prune = append(res.Prune, s.remote.shifted(p))
	}
	res.NextExpiry = earliest(res.NextExpiry, s.remote.result.NextExpiry)
}

// holds says whether the pass's live Checkpoint i is one of the remote tier's.
func (rs *remoteScope) holds(i int) bool {
	return len(rs.policies) > 0 && i >= rs.start
}

// shifted is a prune of the remote computation as the pass's plan holds it: its archive
// indexes live, its quota the pass's policies.
func (rs *remoteScope) shifted(p quota.Prune) quota.Prune {
	p.Archive += rs.start
	p.Quota = rs.of[p.Quota]
	return p
}

// remoteView adds to the view of quota qi what its remoteLimits found: their usage and
// effective policy, and what they prune or block.
func (s *passScope) remoteView(v *QuotaView, qi int) {
	ti := s.remote.twin(qi)
	if ti < 0 || s.remote.governance == nil || s.policies[qi].Remote == nil {
		// A twin with the orphan rule alone: the quota's view of its nodes already shows the
		// rule, which is the same one, and what it prunes is in the quota's pruned status.
		return
	}
	out := s.remote.result.Quotas[ti]
	v.Remote = &out
	v.RemoteEffective = slices.DeleteFunc(s.remote.governance.Effective(ti),
		func(lr policy.LimitReport) bool { return lr.Limit.Key == policy.Orphans })
	v.Result.Blocked = slices.Concat(v.Result.Blocked, out.Blocked)
	for _, c := range s.remote.governance.Conflicts(ti) {
		if c.Key == policy.Orphans {
			continue // the same rule as on nodes, reported there
		}
		c.Key = policy.Key(policy.RemotePrefix + "." + string(c.Key))
		v.Conflicts = append(v.Conflicts, c)
	}
	for _, p := range out.Pending {
		c := s.live[s.remote.start+p.Archive]
		v.Pending = append(v.Pending, PendingArchive{Name: c.Name, Scope: p.Scope, Key: p.Rule, Reason: p.Reason, Size: c.Spec.Archive.SizeBytes})
	}
}
