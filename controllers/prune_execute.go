package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// pruneGroup is what one pass pruned of one scope under one rule of one quota: one event.
type pruneGroup struct {
	quota        int
	scope, key   string
	reason       string
	count, bytes int64
}

// prune deletes the Checkpoints of the plan concurrently and reports what went. What it
// deletes is counted in each quota's status.pruned before the deletes are sent
// (prune_count.go); a quota whose counter cannot be written keeps its archives this pass,
// and every quota does when what the pass decided with changed since (deleteCurrent).
func (r *PruneReconciler) prune(ctx context.Context, s *passScope, plan []quota.Prune) error {
	if plan = r.offloads(ctx, s, r.aged(s, plan)); len(plan) == 0 {
		return nil
	}
	plan, written, previous, countErr := r.countAhead(ctx, s, plan, r.Clock.Now())
	r.counted.counted(s, written, r.wall().Now())
	groups, kept, err := r.deleteCurrent(ctx, s, plan, written)
	for _, pg := range groups {
		prunedCheckpoints.WithLabelValues(pg.key).Add(float64(pg.count))
		prunedBytes.WithLabelValues(pg.key).Add(float64(pg.bytes))
		r.prunedEvent(ctx, s, pg)
	}
	return errors.Join(countErr, err, r.takeBack(ctx, s, kept, written, previous))
}

// deleteCurrent deletes the Checkpoints of the plan concurrently, unless what the pass
// decided with changed since it read it: then it deletes none and asks for another pass.
// It holds releases off from that check until its deletes are done, so that none lands in
// between. It returns what went, by group, and what was counted ahead (written) but kept.
func (r *PruneReconciler) deleteCurrent(ctx context.Context, s *passScope, plan []quota.Prune, written map[int]prunedTally) (
	[]*pruneGroup, map[int]prunedTally, error) {
	if len(plan) == 0 {
		return nil, nil, nil
	}
	unhold := r.Views.holdReleases()
	defer unhold()
	switch current, err := r.current(ctx, s); {
	case err != nil:
		return nil, written, err
	case !current:
		s.refused.Store(true)
		return nil, written, nil
	}
	var mu sync.Mutex
	groups := map[[3]string]*pruneGroup{}
	var order []*pruneGroup
	kept := map[int]prunedTally{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.Concurrency)
	for _, p := range plan {
		g.Go(func() error {
			c := s.live[p.Archive]
			// A pass that failed sends no more deletes: those are surely not done.
			done, err := false, gctx.Err()
			sent := err == nil
			if sent {
				done, err = r.pruneOne(gctx, s, p)
				if err != nil && gctx.Err() == nil {
					pruneErrors.Inc()
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if !done {
				if !sent || surelyKept(err) {
					t := kept[p.Quota]
					kept[p.Quota] = prunedTally{count: t.count + 1, bytes: t.bytes + c.Spec.Archive.SizeBytes}
				}
				return err
			}
			k := [3]string{fmt.Sprint(p.Quota), p.Scope, p.Rule}
			pg := groups[k]
			if pg == nil {
				pg = &pruneGroup{quota: p.Quota, scope: p.Scope, key: p.Rule, reason: p.Reason}
				groups[k] = pg
				order = append(order, pg)
			}
			pg.count++
			pg.bytes += c.Spec.Archive.SizeBytes
			return nil
		})
	}
	return order, kept, g.Wait()
}

// current says that what the pass decided with still holds, as far as this manager can
// tell: no Checkpoint was released since the pass read the cache, and the cache's quotas
// are those it read (none added or gone, none with another spec). A quota of the plan
// changed in the API but not yet in the cache fails its count ahead (countAhead).
func (r *PruneReconciler) current(ctx context.Context, s *passScope) (bool, error) {
	if r.Views.releases() != s.releases {
		return false, nil // each release marked its namespace to be read again
	}
	cqs, ccqs, err := r.listQuotas(ctx)
	if err != nil {
		return false, err
	}
	if quotasPrint(cqs, ccqs) != s.quotas {
		r.Views.touchAll()
		return false, nil
	}
	return true, nil
}

// pruneOne deletes one Checkpoint, reporting false when it must stay after all. The delete
// is conditional on the resourceVersion the decision was made on: a Checkpoint pinned or
// changed in the meantime is kept and decided again on the next pass. It is the only write
// the manager makes per archive; the reason goes into the quota's Pruned event.
func (r *PruneReconciler) pruneOne(ctx context.Context, s *passScope, p quota.Prune) (bool, error) {
	log := logf.FromContext(ctx)
	c := s.live[p.Archive]
	if p.Rule == policy.NameOrphans {
		if gone, err := r.podGone(ctx, c); err != nil || !gone {
			log.V(1).Info("Kept a Checkpoint whose pod is not surely gone", "checkpoint", c.Key(), "error", err)
			return false, nil
		}
	}
	// Metadata only: the request carries what the preconditions need, not the whole object.
	target := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: c.Namespace, Name: c.Name}}
	target.SetGroupVersionKind(cqv1.GroupVersion.WithKind("Checkpoint"))
	uid, rv := c.UID, c.ResourceVersion
	if err := r.Client.Delete(ctx, target, client.Preconditions{UID: &uid, ResourceVersion: &rv}); err != nil {
		if apierrors.IsConflict(err) {
			// It changed since the pass read it. A change that usage does not follow (an
			// annotation) brings no pass, and the kept part would try the same
			// resourceVersion again: a pass soon reads its namespace again.
			r.Views.touch(c.PodNamespace())
			s.refused.Store(true)
		}
		return false, ignoreRace(err)
	}
	r.Views.markGone(uid, c.PodNamespace(), r.Clock.Now())
	log.V(1).Info("Pruned a Checkpoint", "checkpoint", c.Key(), "reason", p.Reason)
	return true, nil
}

// ignoreRace: a Checkpoint that changed or went since the cache showed it is decided again
// by a pass soon, which its change or the refused delete (pruneOne) brings. A delete that
// admission refuses (a Checkpoint pinned in the meantime) keeps the archive, which is what
// the pin asks for.
func ignoreRace(err error) error {
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) || apierrors.IsForbidden(err) {
		return nil
	}
	return err
}

// podGone confirms with a live lookup that the archive's pod no longer exists: not found,
// or found with another UID. An error is doubt, and doubt keeps the archive.
func (r *PruneReconciler) podGone(ctx context.Context, c liveCheckpoint) (bool, error) {
	p := &metav1.PartialObjectMetadata{}
	p.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: c.PodNamespace(), Name: c.Spec.Archive.PodName}, p)
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, err
	}
	return p.UID != c.Spec.Archive.PodUID, nil
}

// prunedEvent reports a group on its quota, and on the pod where it still exists.
func (r *PruneReconciler) prunedEvent(ctx context.Context, s *passScope, pg *pruneGroup) {
	noun := "checkpoints"
	if pg.count == 1 {
		noun = "checkpoint"
	}
	note := fmt.Sprintf("Pruned %d %s (%s) of %s: %s", pg.count, noun, quota.Bytes(pg.bytes), pg.scope, pg.reason)
	obj := s.objects[pg.quota]
	r.Recorder.Event(obj, corev1.EventTypeNormal, cqv1.ReasonPruned, note)
	if pod := r.podOfScope(ctx, s, pg.scope); pod != nil {
		r.Recorder.Eventf(pod, corev1.EventTypeNormal, cqv1.ReasonPruned, "%s (%s)", note, s.policies[pg.quota].Ref)
	}
}

// podOfScope returns a reference object for the pod of a "ns/pod[/container]" scope when
// the cache holds it.
func (r *PruneReconciler) podOfScope(ctx context.Context, s *passScope, scope string) *corev1.Pod {
	ns, pod, ok := splitPodScope(scope)
	if !ok {
		return nil
	}
	p, err := r.pod(ctx, s, types.NamespacedName{Namespace: ns, Name: pod})
	if err != nil || p == nil {
		return nil
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, UID: p.UID, ResourceVersion: p.ResourceVersion}}
}
