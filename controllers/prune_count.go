package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// status.pruned lives in the API only. A pass adds what it is about to delete to each
// quota's counter before it sends the deletes (write-ahead), and takes back the deletes
// that surely did not happen. A manager that stops after a delete so never loses it; one
// that stops between the two writes over-counts a refused delete, never under-counts.

// prunedTally is what a pass adds to one quota's status.pruned; negative takes back.
type prunedTally struct {
	count, bytes int64
}

// countTimes spaces the writes of each quota's status.pruned, so that a stream of archives
// over a limit costs one counter write per CountInterval, not one per pass. A zero value is
// ready to use.
type countTimes struct{ writeTimes }

// spaced returns the plan without the archives of quotas whose counter was written less
// than interval ago, and how long until the first of those may be counted again (0 when
// none waits). Kept archives stay counted in usage and are decided again then.
func (c *countTimes) spaced(s *passScope, plan []quota.Prune, interval time.Duration, now time.Time) ([]quota.Prune, time.Duration) {
	if interval <= 0 || len(plan) == 0 {
		return plan, 0
	}
	var soonest time.Duration
	kept := make([]quota.Prune, 0, len(plan))
	for _, p := range plan {
		wait := c.wait(s.policies[p.Quota].Ref, interval, now)
		if wait <= 0 {
			kept = append(kept, p)
			continue
		}
		if soonest == 0 || wait < soonest {
			soonest = wait
		}
	}
	return kept, soonest
}

// counted records a counter write of the quotas in tallies, and forgets the quotas that
// are gone from the pass.
func (c *countTimes) counted(s *passScope, tallies map[int]prunedTally, now time.Time) {
	present := make(map[policy.Ref]bool, len(s.policies))
	for _, q := range s.policies {
		present[q.Ref] = true
	}
	c.keepOnly(func(ref policy.Ref) bool { return present[ref] })
	for qi := range tallies {
		c.wrote(s.policies[qi].Ref, now)
	}
}

// countAttempts bounds the fresh reads of a counter write that keeps conflicting.
const countAttempts = 4

// countAhead records, for each quota of the plan, what the plan deletes of it. It returns
// the plan without the archives of quotas whose counter could not be written (they are
// kept until a pass can count them), the tallies written, and the lastTime each replaced.
// A quota found changed since the pass read it (errQuotaChanged) keeps its archives too,
// without an error: the pass asks for another, which reads everything again.
func (r *PruneReconciler) countAhead(ctx context.Context, s *passScope, plan []quota.Prune, now time.Time) (
	[]quota.Prune, map[int]prunedTally, map[int]*metav1.Time, error) {
	tallies := map[int]prunedTally{}
	var order []int
	for _, p := range plan {
		t, ok := tallies[p.Quota]
		if !ok {
			order = append(order, p.Quota)
		}
		tallies[p.Quota] = prunedTally{count: t.count + 1, bytes: t.bytes + s.live[p.Archive].Spec.Archive.SizeBytes}
	}
	previous := map[int]*metav1.Time{}
	var errs []error
	for _, qi := range order {
		err := r.writePruned(ctx, s.policies[qi].Ref, s.objects[qi], sameSpec, func(p *cqv1.PrunedStatus) {
			previous[qi] = p.LastTime.DeepCopy()
			*p = addPruned(*p, tallies[qi], now)
		})
		if err == nil {
			continue
		}
		delete(tallies, qi)
		if errors.Is(err, errQuotaChanged) {
			// The cache may not show the change yet: the next pass reads every namespace.
			r.Views.touchAll()
			s.refused.Store(true)
			continue
		}
		errs = append(errs, err)
	}
	if len(tallies) == len(order) {
		return plan, tallies, previous, nil
	}
	kept := make([]quota.Prune, 0, len(plan))
	for _, p := range plan {
		if _, ok := tallies[p.Quota]; ok {
			kept = append(kept, p)
		}
	}
	return kept, tallies, previous, errors.Join(errs...)
}

// takeBack removes from the counters the deletes that did not happen; a quota none of whose
// deletes happened gets its lastTime back.
func (r *PruneReconciler) takeBack(ctx context.Context, s *passScope, kept, written map[int]prunedTally, previous map[int]*metav1.Time) error {
	var errs []error
	for qi, t := range kept {
		whole := t.count == written[qi].count
		err := r.writePruned(ctx, s.policies[qi].Ref, s.objects[qi], sameUID, func(p *cqv1.PrunedStatus) {
			*p = addPruned(*p, prunedTally{count: -t.count, bytes: -t.bytes}, time.Time{})
			if whole {
				p.LastTime = previous[qi].DeepCopy()
			}
		})
		if errors.Is(err, errQuotaChanged) {
			continue // the object counted is gone, and its counter with it
		}
		if err != nil {
			logf.FromContext(ctx).Error(err, "Counted in status.pruned deletes that did not happen", "quota", s.policies[qi].Ref.String(), "checkpoints", t.count)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// errQuotaChanged: the quota whose counter a pass writes is gone, re-created, or (ahead of
// the deletes) no longer has the spec the pass decided with.
var errQuotaChanged = errors.New("the quota changed since the pass read it")

// quotaCheck is what writePruned asks of the quota it reads again after a conflict.
type quotaCheck uint8

const (
	// sameUID: a counter belongs to one object. Taking a count back needs no more.
	sameUID quotaCheck = iota
	// sameSpec: also the spec (generation) that decided the deletes, for the count written
	// ahead of them.
	sameSpec
)

// writePruned changes a quota's status.pruned in the API. The patch carries the
// resourceVersion it was computed on, and a conflict reads the quota again, so that a
// count is never computed on a stale copy nor lost to another write. A quota gone, or read
// again other than check asks of cached, is errQuotaChanged.
func (r *PruneReconciler) writePruned(ctx context.Context, ref policy.Ref, cached client.Object, check quotaCheck, change func(*cqv1.PrunedStatus)) error {
	obj := cached.DeepCopyObject().(client.Object)
	var err error
	for range countAttempts {
		before := obj.DeepCopyObject().(client.Object)
		change(&quotaStatusOf(obj).Pruned)
		err = r.Client.Status().Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		if !apierrors.IsConflict(err) {
			break
		}
		if err = r.APIReader.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			break
		}
		if obj.GetUID() != cached.GetUID() || (check == sameSpec && obj.GetGeneration() != cached.GetGeneration()) {
			err = errQuotaChanged
			break
		}
	}
	if apierrors.IsNotFound(err) {
		err = errQuotaChanged
	}
	if err != nil {
		return fmt.Errorf("writing status.pruned of %s: %w", ref, err)
	}
	quotaMetrics.wrote(ref)
	return nil
}

// addPruned is the counter p with a tally added, never below zero; a non-zero at moves
// lastTime forward.
func addPruned(p cqv1.PrunedStatus, t prunedTally, at time.Time) cqv1.PrunedStatus {
	out := cqv1.PrunedStatus{Checkpoints: max(p.Checkpoints+t.count, 0),
		Storage: *bytesQuantity(max(p.Storage.Value()+t.bytes, 0)), LastTime: p.LastTime.DeepCopy()}
	if !at.IsZero() && (out.LastTime == nil || out.LastTime.Time.Before(at)) {
		out.LastTime = timePtr(at)
	}
	return out
}

// quotaStatusOf is the status of either quota kind.
func quotaStatusOf(obj client.Object) *cqv1.QuotaStatus {
	switch q := obj.(type) {
	case *cqv1.CheckpointQuota:
		return &q.Status
	case *cqv1.ClusterCheckpointQuota:
		return &q.Status
	}
	panic(fmt.Sprintf("not a quota: %T", obj))
}

// surelyKept says that a delete that pruneOne reported undone did not happen: it kept the
// Checkpoint (err nil) or the API answered that it refused it. A delete whose answer was
// lost (no answer, a timeout) may have happened, and stays counted.
func surelyKept(err error) bool {
	if err == nil {
		return true
	}
	var status apierrors.APIStatus
	return errors.As(err, &status) && !apierrors.IsTimeout(err) && !apierrors.IsServerTimeout(err) && !apierrors.IsInternalError(err)
}
