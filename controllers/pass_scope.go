package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// passScope is what one pass of the pruning controller learns, phase by phase: load reads
// it from the cache, remember completes it with what the reconciler keeps between passes,
// and the computation, the node rules, publish and prune read it.
type passScope struct {
	now time.Time
	// live are the Checkpoints that count, aligned with input.Archives.
	live []*cqv1.Checkpoint
	// podStates says, aligned with live, what the cache shows of each archive's pod.
	podStates []podState
	// present holds every Checkpoint of the cache, true for a terminating one.
	present map[types.UID]bool
	// releases is the Engine's count of releases when the pass began reading.
	releases uint64
	// objects and policies are the quotas that parse, aligned with input.Quotas.
	objects  []client.Object
	policies []*policy.Quota
	// invalid are quotas with a value that does not parse.
	invalid     map[policy.Ref]error
	generations map[policy.Ref]int64
	input       quota.Input
	resolution  *quota.Resolution
	pods        map[types.NamespacedName]*metav1.PartialObjectMetadata
}

// podState is what the cache shows of an archive's pod.
type podState uint8

const (
	// podUnknown: the archive names no pod UID, so it is never an orphan.
	podUnknown podState = iota
	// podPresent: the pod is there with the archive's UID, or the cache could not answer.
	podPresent
	// podGone: the synced cache holds no pod of that name, or one with another UID.
	podGone
)

// load reads everything a pass needs from the cache and changes nothing: what the
// reconciler remembers between passes is updated by remember. Objects are shared with the
// cache and must not be modified.
func (r *PruneReconciler) load(ctx context.Context, now time.Time) (*passScope, error) {
	s := &passScope{now: now, releases: r.Engine.releases(), invalid: map[policy.Ref]error{},
		generations: map[policy.Ref]int64{}, pods: map[types.NamespacedName]*metav1.PartialObjectMetadata{}}
	var cqs cqv1.CheckpointQuotaList
	if err := r.Client.List(ctx, &cqs, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing CheckpointQuotas: %w", err)
	}
	for i := range cqs.Items {
		q, err := policy.FromCheckpointQuota(&cqs.Items[i])
		s.addQuota(&cqs.Items[i], policy.Ref{Kind: policy.KindQuota, Namespace: cqs.Items[i].Namespace, Name: cqs.Items[i].Name}, q, err)
	}
	var ccqs cqv1.ClusterCheckpointQuotaList
	if err := r.Client.List(ctx, &ccqs, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing ClusterCheckpointQuotas: %w", err)
	}
	for i := range ccqs.Items {
		q, err := policy.FromClusterQuota(&ccqs.Items[i])
		s.addQuota(&ccqs.Items[i], policy.Ref{Kind: policy.KindClusterQuota, Name: ccqs.Items[i].Name}, q, err)
	}

	var cps cqv1.CheckpointList
	if err := r.Client.List(ctx, &cps, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing Checkpoints: %w", err)
	}
	nsLabels := map[string]map[string]string{}
	s.input.Archives = make([]quota.Archive, 0, len(cps.Items))
	s.present = make(map[types.UID]bool, len(cps.Items))
	for i := range cps.Items {
		c := &cps.Items[i]
		s.present[c.UID] = !c.DeletionTimestamp.IsZero()
		// Terminating archives are on their way out: the agent removes the file. A
		// Checkpoint without spec.archive, which an agent before v0.3 published, is left out
		// until its agent adopts it: without its time it would be taken for the newest and
		// spare an older archive.
		if !c.DeletionTimestamp.IsZero() || r.Engine.isGone(c.UID) || c.Spec.Archive == nil {
			continue
		}
		if ns := c.PodNamespace(); nsLabels[ns] == nil {
			if labels, ok := r.namespaceLabels(ctx, ns); ok {
				nsLabels[ns] = labels
			}
		}
		a, _ := quota.ArchiveOf(c) // spec.archive is set: checked above
		s.live = append(s.live, c)
		s.podStates = append(s.podStates, r.podState(ctx, s, c))
		s.input.Archives = append(s.input.Archives, a)
	}

	s.input, s.resolution = quota.InputOf(s.policies, s.input.Archives, nsLabels, s.pods, now)
	return s, nil
}

// remember updates, from what the pass read, what the reconciler keeps between passes: the
// orphan clocks, which give each orphan the time this manager first saw it orphaned, and
// the Engine's deleted set, whose entries go once the cache shows the deletion.
func (r *PruneReconciler) remember(s *passScope) {
	for i, c := range s.live {
		switch s.podStates[i] {
		case podPresent:
			r.orphans.forget(c.UID)
		case podGone:
			s.input.Archives[i].OrphanSince = r.orphans.since(c.UID, s.now)
		}
	}
	r.orphans.keepOnly(func(uid types.UID) bool { _, ok := s.present[uid]; return ok })
	r.Engine.forgetGone(func(uid types.UID) bool { terminating, ok := s.present[uid]; return ok && !terminating })
}

func (s *passScope) addQuota(obj client.Object, ref policy.Ref, q *policy.Quota, err error) {
	s.generations[ref] = obj.GetGeneration()
	if err != nil {
		s.invalid[ref] = err
		return
	}
	s.objects = append(s.objects, obj)
	s.policies = append(s.policies, q)
}

func (r *PruneReconciler) namespaceLabels(ctx context.Context, name string) (map[string]string, bool) {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, ns, client.UnsafeDisableDeepCopy); err != nil {
		return nil, false
	}
	if ns.Labels == nil {
		return map[string]string{}, true
	}
	return ns.Labels, true
}

// pod returns the cached metadata of a pod, nil when the cache does not hold it; the
// error is set when the cache could not answer.
func (r *PruneReconciler) pod(ctx context.Context, s *passScope, key types.NamespacedName) (*metav1.PartialObjectMetadata, error) {
	if p, ok := s.pods[key]; ok {
		return p, nil
	}
	p := &metav1.PartialObjectMetadata{}
	p.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
	err := r.Client.Get(ctx, key, p, client.UnsafeDisableDeepCopy)
	switch {
	case apierrors.IsNotFound(err):
		p = nil
	case err != nil:
		return nil, err
	}
	s.pods[key] = p
	return p, nil
}

// podState says whether the synced pod cache shows the archive's pod gone. An archive
// without a pod UID is never an orphan; a cache that cannot answer keeps the archive.
func (r *PruneReconciler) podState(ctx context.Context, s *passScope, c *cqv1.Checkpoint) podState {
	a := c.Spec.Archive
	if a.PodUID == "" || a.PodName == "" {
		return podUnknown
	}
	p, err := r.pod(ctx, s, types.NamespacedName{Namespace: c.PodNamespace(), Name: a.PodName})
	if err != nil || (p != nil && p.UID == a.PodUID) {
		return podPresent
	}
	return podGone
}
