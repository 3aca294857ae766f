package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// +kubebuilder:rbac:groups=checkpointquota.dev,resources=checkpoints/status,verbs=patch
// +kubebuilder:rbac:groups=checkpointquota.dev,resources=checkpointstores,verbs=get;list;watch

// ReasonOffloading is the event of a quota that moves archives to its store.
const ReasonOffloading = "Offloading"

// offloadOf is the offload of the quota obj, nil when it has none.
func offloadOf(obj client.Object) *cqv1.OffloadSpec {
	switch q := obj.(type) {
	case *cqv1.CheckpointQuota:
		return q.Spec.Offload
	case *cqv1.ClusterCheckpointQuota:
		return q.Spec.Offload
	}
	return nil
}

// isNodeGuard says whether a prune comes from a node rule (perNode, the free-space floor):
// those free the node's disk even when the store is down.
func isNodeGuard(key string) bool {
	return strings.HasPrefix(key, "perNode.") || key == quota.KeyNodeMinFree
}

// storedCopy says whether the archive i of the pass, on a node, is a copy fetched there of an
// archive whose stored Checkpoint the pass holds (spec.archive.copyOf; load): removing it
// loses nothing, and storing it again would store the same bytes twice.
func (s *passScope) storedCopy(i int) bool {
	return i < len(s.archives) && s.archives[i].Copy && s.live[i].Spec.Archive.CopyOf != nil
}

// offloads takes from the plan what its quotas move to a store instead of deleting, asks
// the node agents to move it (status.offload, one write per archive), and returns what
// is left to delete. An archive asked for already is in flight: it is neither asked for
// again nor deleted, and counts on its node until its agent has stored it. A node rule
// deletes an archive that its store does not take (storeStuck): the node's disk comes
// first, and the event says what was lost. A move that the remote limits would prune from
// the store as soon as it arrived is deleted from its node instead (prunedOnArrival).
func (r *PruneReconciler) offloads(ctx context.Context, s *passScope, plan []quota.Prune) []quota.Prune {
	remaining := plan[:0:0]
	var moves []move
	for _, p := range plan {
		c := s.live[p.Archive]
		if s.remote.holds(p.Archive) {
			// Stored: a remote limit prunes it, and deleting its Checkpoint deletes the
			// object (prune_remote.go).
			remaining = append(remaining, p)
			continue
		}
		spec := offloadOf(s.objects[p.Quota])
		store := storeFor(c, spec)
		if c.IsOffloaded() {
			// On its node, so a fetched copy: freeing it removes the copy, never the
			// Checkpoint, which would remove the stored archive too.
			if c.Status.Offload == nil && c.IsFetchedCopy() {
				if err := r.requestOffload(ctx, c.Checkpoint, c.Status.Location.Store, p.Reason); err != nil {
					logf.FromContext(ctx).Info("Could not ask for a fetched copy's removal; the next pass asks again", "checkpoint", c.Key(), "error", err.Error())
				} else {
					r.Recorder.Eventf(s.objects[p.Quota], corev1.EventTypeNormal, ReasonOffloading,
						"Removing the fetched copy of %s/%s from node %s (it stays in CheckpointStore %s): %s",
						c.Namespace, c.Name, c.Spec.Archive.NodeName, c.Status.Location.Store, p.Reason)
				}
			}
			continue
		}
		switch {
		case c.IsPinned():
			remaining = append(remaining, p)
			continue
		case s.storedCopy(p.Archive):
			// A copy fetched to another node than its archive's: its bytes are in the store
			// already, under the stored Checkpoint. Deleting it removes the copy only.
			remaining = append(remaining, p)
			continue
		case p.Rule == policy.NameOrphans:
			// An orphan past its grace period under Delete goes, as it would from the store
			// at once: moving it would only upload what the same rule deletes there.
			remaining = append(remaining, p)
			continue
		case isNodeGuard(p.Rule) && store != "":
			if why := r.storeStuck(s, c, store); why != "" {
				r.Recorder.Eventf(s.objects[p.Quota], corev1.EventTypeWarning, ReasonOffloadLost,
					"Deleting %s/%s from node %s without storing it: %s, and CheckpointStore %s does not take it (%s)",
					c.Namespace, c.Name, c.Spec.Archive.NodeName, p.Reason, store, why)
				remaining = append(remaining, p)
				continue
			}
		}
		switch {
		case spec == nil:
			remaining = append(remaining, p)
		case c.Status.Offload != nil:
			moves = append(moves, move{prune: p, store: store, inFlight: true})
		case r.storeAdmits(ctx, s, p, spec.Store):
			moves = append(moves, move{prune: p, store: store})
			// Otherwise not known to admit it (a store or namespace the cache does not show
			// yet), or a tenant's quota whose store no longer admits its namespace: when in
			// doubt, the file stays, neither moved nor deleted.
		}
	}
	atOnce := r.prunedOnArrival(ctx, s, moves)
	groups := map[[3]string]*pruneGroup{}
	var order []*pruneGroup
	stores := map[[3]string]string{}
	for _, m := range moves {
		p, c := m.prune, s.live[m.prune.Archive]
		if remote, ok := atOnce[p.Archive]; ok {
			remote.Reason = atOnceReason(remote.Reason, m.store)
			remaining = append(remaining, remote)
			continue
		}
		if m.inFlight {
			continue
		}
		if err := r.requestOffload(ctx, c.Checkpoint, m.store, p.Reason); err != nil {
			logf.FromContext(ctx).Info("Could not ask for an archive's offload; the next pass asks again", "checkpoint", c.Key(), "error", err.Error())
			continue
		}
		k := [3]string{fmt.Sprint(p.Quota), p.Scope, p.Rule}
		pg := groups[k]
		if pg == nil {
			pg = &pruneGroup{quota: p.Quota, scope: p.Scope, key: p.Rule, reason: p.Reason}
			groups[k], stores[k] = pg, m.store
			order = append(order, pg)
		}
		pg.count++
		pg.bytes += c.Spec.Archive.SizeBytes
	}
	for _, pg := range order {
		r.Recorder.Eventf(s.objects[pg.quota], corev1.EventTypeNormal, ReasonOffloading, "Moving %d archives (%s) of %s to CheckpointStore %s: %s",
			pg.count, quota.Bytes(pg.bytes), pg.scope, stores[[3]string{fmt.Sprint(pg.quota), pg.scope, pg.key}], pg.reason)
	}
	return remaining
}

// storeFor is the store an archive moves to: the one asked for already, else the one of
// the quota that prunes it; "" when it is deleted, not moved.
func storeFor(c liveCheckpoint, spec *cqv1.OffloadSpec) string {
	switch {
	case c.Status.Offload != nil:
		return c.Status.Offload.Store
	case spec != nil:
		return spec.Store
	}
	return ""
}

// moveStuck says whether p moves its archive to a store that does not take it now: such
// an archive frees nothing on its node, so the node rules may still prune it.
func (r *PruneReconciler) moveStuck(s *passScope, p quota.Prune) bool {
	c := s.live[p.Archive]
	store := storeFor(c, offloadOf(s.objects[p.Quota]))
	return store != "" && !c.IsPinned() && !c.IsOffloaded() && r.storeStuck(s, c, store) != ""
}

// storeStuck says why the archive of c cannot be stored now, "" when nothing says so:
// its upload failed (OffloadFailed) and no check of the store from its node since could
// write, or its node's last check of the store could not write.
func (r *PruneReconciler) storeStuck(s *passScope, c liveCheckpoint, store string) string {
	chk, checked := s.storeChecks[c.Spec.Archive.NodeName][store]
	if failed := meta.FindStatusCondition(c.Status.Conditions, cqv1.CheckpointConditionOffloadFailed); failed != nil &&
		failed.Status == metav1.ConditionTrue && c.Status.Offload != nil && c.Status.Offload.Store == store {
		if checked && chk.Writable && chk.CheckTime.After(failed.LastTransitionTime.Time) {
			return "" // the store is back: the agent's next try stores it
		}
		return "its upload failed: " + failed.Message
	}
	if checked && !chk.Writable {
		return fmt.Sprintf("node %s's check of the store at %s failed: %s", c.Spec.Archive.NodeName,
			chk.CheckTime.UTC().Format(time.RFC3339), chk.Message)
	}
	return ""
}

// takeOver drops from res the prunes that a node rule now makes of the same archives:
// those the limits moved and the store does not take, which the node rule deletes.
func takeOver(res *quota.Result, byNode []quota.Prune) {
	if len(byNode) == 0 {
		return
	}
	taken := make(map[int]bool, len(byNode))
	for _, p := range byNode {
		taken[p.Archive] = true
	}
	drop := func(ps []quota.Prune) []quota.Prune {
		out := ps[:0]
		for _, p := range ps {
			if !taken[p.Archive] {
				out = append(out, p)
			}
		}
		return out
	}
	res.Prune = drop(res.Prune)
	for q := range res.Quotas {
		res.Quotas[q].Pending = drop(res.Quotas[q].Pending)
	}
}

// ReasonOffloadLost is the warning of a node rule that deletes an archive its quota
// would have moved, because the store does not take it.
const ReasonOffloadLost = "OffloadLost"

// storeAdmits says whether the quota of p may use the store: a cluster quota always; a
// CheckpointQuota only where the store's namespaceSelector selects its namespace now, as
// far as the cache shows them. A store that does not admit it is said on the quota.
func (r *PruneReconciler) storeAdmits(ctx context.Context, s *passScope, p quota.Prune, name string) bool {
	q, ok := s.objects[p.Quota].(*cqv1.CheckpointQuota)
	if !ok {
		return true
	}
	var store cqv1.CheckpointStore
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, &store); err != nil {
		return false
	}
	labels, known := s.nsLabels[q.Namespace]
	if !known {
		if labels, known = r.namespaceLabels(ctx, q.Namespace); !known {
			return false
		}
	}
	if !store.Admits(labels) {
		r.Recorder.Eventf(q, corev1.EventTypeWarning, ReasonOffloadRefused,
			"CheckpointStore %s does not admit namespace %s: what this quota prunes stays on its node", name, q.Namespace)
		return false
	}
	return true
}

// ReasonOffloadRefused is the warning of a CheckpointQuota whose store does not admit its
// namespace (any more: admission refuses it when the quota is written).
const ReasonOffloadRefused = "OffloadRefused"

// requestOffload sets status.offload, on the resourceVersion the pass decided with: a
// Checkpoint pinned or changed meanwhile is decided again.
func (r *PruneReconciler) requestOffload(ctx context.Context, c *cqv1.Checkpoint, store, reason string) error {
	patched := c.DeepCopy()
	patch := client.MergeFromWithOptions(c, client.MergeFromWithOptimisticLock{})
	patched.Status.Offload = &cqv1.OffloadRequest{Store: store, Reason: reason}
	err := r.Client.Status().Patch(ctx, patched, patch)
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		r.Views.touch(c.PodNamespace())
		return nil
	}
	return err
}

// KeyOffloadAfter is the rule of an offload that offload.after asks for, while the limits
// keep the archive: such an archive is only ever moved, never deleted.
const KeyOffloadAfter = "offload.after"

// aged adds to the plan the archives that the limits keep but that are older than the
// offload.after of a quota governing them (a CheckpointQuota's before a cluster quota's),
// and wakes the pass when the next one comes of age.
func (r *PruneReconciler) aged(s *passScope, plan []quota.Prune) []quota.Prune {
	if s.governance == nil || !anyOffloadAfter(s.objects) {
		return plan
	}
	planned := make(map[int]bool, len(plan))
	for _, p := range plan {
		planned[p.Archive] = true
	}
	var next time.Time
	for i, c := range s.live {
		if planned[i] || i >= len(s.governance.Rules) || c.IsPinned() || c.Status.Offload != nil || c.IsOffloaded() ||
			c.Spec.Archive == nil || s.storedCopy(i) || c.Spec.Archive.CheckpointTime.IsZero() {
			continue
		}
		rules := s.governance.Rules[i]
		if rules == nil || rules.Held != "" {
			continue
		}
		q, after := r.offloadAfter(s, rules)
		if q < 0 {
			continue
		}
		due := c.Spec.Archive.CheckpointTime.Add(after)
		if s.now.Before(due) {
			if next.IsZero() || due.Before(next) {
				next = due
			}
			continue
		}
		a := c.Spec.Archive
		plan = append(plan, quota.Prune{Archive: i, Quota: q, Rule: KeyOffloadAfter, Scope: c.PodNamespace() + "/" + a.PodName + "/" + a.ContainerName,
			Reason: fmt.Sprintf("%s %s, taken %s ago", KeyOffloadAfter, after, s.now.Sub(a.CheckpointTime.Time).Round(time.Second))})
	}
	if !next.IsZero() && r.wake != nil {
		r.wake.at(next)
	}
	return plan
}

// offloadAfter is the quota whose offload.after applies to archives under rules, and its
// duration; -1 when none does.
func (r *PruneReconciler) offloadAfter(s *passScope, rules *quota.Rules) (int, time.Duration) {
	quotas := make([]int, 0, len(rules.Bounds)+3)
	for _, l := range rules.Bounds {
		quotas = append(quotas, l.Quota)
	}
	for _, ret := range []*quota.Retention{rules.MaxAge, rules.MaxSize, rules.Orphans} {
		if ret != nil {
			quotas = append(quotas, ret.Quota)
		}
	}
	best, bestAfter, bestCluster := -1, time.Duration(0), true
	for _, q := range quotas {
		if q >= len(s.objects) || s.governance.Quotas[q].DryRun {
			continue
		}
		spec := offloadOf(s.objects[q])
		if spec == nil || spec.After == nil {
			continue
		}
		after, err := spec.After.Duration()
		if err != nil || after <= 0 {
			continue
		}
		cluster := s.governance.Quotas[q].Cluster
		if best < 0 || (bestCluster && !cluster) {
			best, bestAfter, bestCluster = q, after, cluster
		}
	}
	return best, bestAfter
}

// anyOffloadAfter says whether a quota sets offload.after: a pass without one looks at no archive for it.
func anyOffloadAfter(objs []client.Object) bool {
	for _, o := range objs {
		if spec := offloadOf(o); spec != nil && spec.After != nil {
			return true
		}
	}
	return false
}
