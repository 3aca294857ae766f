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

// world is what one pass of the pruning controller read from the cache.
type world struct {
	// live are the Checkpoints that count, aligned with input.Archives.
	live []*cqv1.Checkpoint
	// all are every Checkpoint, terminating ones included, for the release of gone nodes.
	all []*cqv1.Checkpoint
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

// load reads everything a pass needs from the cache. Objects are shared with the cache
// and must not be modified.
func (r *PruneReconciler) load(ctx context.Context, now time.Time) (*world, error) {
	w := &world{invalid: map[policy.Ref]error{}, generations: map[policy.Ref]int64{},
		pods: map[types.NamespacedName]*metav1.PartialObjectMetadata{}}
	var cqs cqv1.CheckpointQuotaList
	if err := r.Client.List(ctx, &cqs, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing CheckpointQuotas: %w", err)
	}
	for i := range cqs.Items {
		q, err := policy.FromCheckpointQuota(&cqs.Items[i])
		w.addQuota(&cqs.Items[i], policy.Ref{Kind: policy.KindQuota, Namespace: cqs.Items[i].Namespace, Name: cqs.Items[i].Name}, q, err)
	}
	var ccqs cqv1.ClusterCheckpointQuotaList
	if err := r.Client.List(ctx, &ccqs, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing ClusterCheckpointQuotas: %w", err)
	}
	for i := range ccqs.Items {
		q, err := policy.FromClusterQuota(&ccqs.Items[i])
		w.addQuota(&ccqs.Items[i], policy.Ref{Kind: policy.KindClusterQuota, Name: ccqs.Items[i].Name}, q, err)
	}

	var cps cqv1.CheckpointList
	if err := r.Client.List(ctx, &cps, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing Checkpoints: %w", err)
	}
	nsLabels := map[string]map[string]string{}
	w.input.Archives = make([]quota.Archive, 0, len(cps.Items))
	present := map[types.UID]bool{}
	for i := range cps.Items {
		c := &cps.Items[i]
		w.all = append(w.all, c)
		present[c.UID] = !c.DeletionTimestamp.IsZero()
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
		if since, orphan := r.orphanSince(ctx, w, c, now); orphan {
			a.OrphanSince = since
		}
		w.live = append(w.live, c)
		w.input.Archives = append(w.input.Archives, a)
	}
	// Forget deletions once the cache shows them terminating or gone.
	r.Engine.forgetGone(func(uid types.UID) bool { terminating, ok := present[uid]; return ok && !terminating })
	r.forgetOrphans(present)

	w.resolution = quota.Resolve(w.policies, w.input.Archives, quota.Labels{Namespaces: nsLabels, Pod: quota.PodLabelsFrom(w.pods)})
	w.input.Quotas = w.resolution.Quotas
	w.input.Rules = w.resolution.Rules
	w.input.Now = now
	return w, nil
}

func (w *world) addQuota(obj client.Object, ref policy.Ref, q *policy.Quota, err error) {
	w.generations[ref] = obj.GetGeneration()
	if err != nil {
		w.invalid[ref] = err
		return
	}
	w.objects = append(w.objects, obj)
	w.policies = append(w.policies, q)
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
func (r *PruneReconciler) pod(ctx context.Context, w *world, key types.NamespacedName) (*metav1.PartialObjectMetadata, error) {
	if p, ok := w.pods[key]; ok {
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
	w.pods[key] = p
	return p, nil
}

// orphanSince says whether the synced pod cache shows the archive's pod gone, and since
// when this controller knows it. An archive without a pod UID, or a cache that cannot
// answer, is never an orphan.
func (r *PruneReconciler) orphanSince(ctx context.Context, w *world, c *cqv1.Checkpoint, now time.Time) (time.Time, bool) {
	s := c.Spec.Archive
	if s.PodUID == "" || s.PodName == "" {
		return time.Time{}, false
	}
	p, err := r.pod(ctx, w, types.NamespacedName{Namespace: c.PodNamespace(), Name: s.PodName})
	if err != nil || (p != nil && p.UID == s.PodUID) {
		delete(r.orphans, c.UID)
		return time.Time{}, false
	}
	since, ok := r.orphans[c.UID]
	if !ok {
		since = now
		r.orphans[c.UID] = since
	}
	return since, true
}

func (r *PruneReconciler) forgetOrphans(present map[types.UID]bool) {
	for uid := range r.orphans {
		if _, ok := present[uid]; !ok {
			delete(r.orphans, uid)
		}
	}
}
