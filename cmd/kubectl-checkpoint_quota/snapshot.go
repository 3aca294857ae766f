package main

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// snapshot is the cluster as the manager's arithmetic sees it, read once: the same inputs
// the pruning controller builds, so that explain reports what the manager would decide.
type snapshot struct {
	checkpoints []*cqv1.Checkpoint // aligned with input.Archives
	input       quota.Input
	governance  *quota.Governance
	pods        map[types.NamespacedName]*corev1.Pod
	invalid     map[string]error
}

// loadSnapshot reads the archives of one tier: those in CheckpointStores (stored) under the
// quotas' remoteLimits (their twins, quota.Remote), or those on nodes under their limits.
func loadSnapshot(ctx context.Context, c client.Client, now time.Time, stored bool) (*snapshot, error) {
	s := &snapshot{pods: map[types.NamespacedName]*corev1.Pod{}, invalid: map[string]error{}}
	var policies []*policy.Quota
	var unparsed []policy.Ref
	var cqs cqv1.CheckpointQuotaList
	if err := c.List(ctx, &cqs); err != nil {
		return nil, fmt.Errorf("listing CheckpointQuotas: %w", err)
	}
	for i := range cqs.Items {
		q, err := policy.FromCheckpointQuota(&cqs.Items[i])
		if err != nil {
			s.invalid["CheckpointQuota "+cqs.Items[i].Namespace+"/"+cqs.Items[i].Name] = err
			unparsed = append(unparsed, policy.Ref{Kind: policy.KindQuota, Namespace: cqs.Items[i].Namespace, Name: cqs.Items[i].Name})
			continue
		}
		policies = append(policies, q)
	}
	var ccqs cqv1.ClusterCheckpointQuotaList
	if err := c.List(ctx, &ccqs); err != nil {
		return nil, fmt.Errorf("listing ClusterCheckpointQuotas: %w", err)
	}
	for i := range ccqs.Items {
		q, err := policy.FromClusterQuota(&ccqs.Items[i])
		if err != nil {
			s.invalid["ClusterCheckpointQuota "+ccqs.Items[i].Name] = err
			unparsed = append(unparsed, policy.Ref{Kind: policy.KindClusterQuota, Name: ccqs.Items[i].Name})
			continue
		}
		policies = append(policies, q)
	}
	var nss corev1.NamespaceList
	if err := c.List(ctx, &nss); err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	nsLabels := map[string]map[string]string{}
	for _, ns := range nss.Items {
		nsLabels[ns.Name] = ns.Labels
		if nsLabels[ns.Name] == nil {
			nsLabels[ns.Name] = map[string]string{}
		}
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods); err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		s.pods[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}] = p
	}
	var cps cqv1.CheckpointList
	if err := c.List(ctx, &cps); err != nil {
		return nil, fmt.Errorf("listing Checkpoints: %w", err)
	}
	for i := range cps.Items {
		cp := &cps.Items[i]
		a, ok := quota.ArchiveOf(cp)
		if !ok || cp.IsArchiveRemoved() || !inTier(cp, stored) {
			continue
		}
		a.Copy = a.Copy && !stored // in the store, a fetched copy's archive is as any other
		s.checkpoints = append(s.checkpoints, cp)
		s.input.Archives = append(s.input.Archives, a)
	}
	if stored {
		policies, _ = quota.Remote(policies)
	}
	s.input, s.governance = quota.InputOf(policies, s.input.Archives,
		quota.Labels{Namespaces: nsLabels, Pod: quota.PodLabelsFrom(s.pods), Unparsed: unparsed}, now)
	return s, nil
}

// inTier says whether a Checkpoint's archive counts in the tier asked for: in a store when it
// is offloaded, on its node when it is not or when a copy was fetched back there (both).
func inTier(cp *cqv1.Checkpoint, stored bool) bool {
	if stored {
		return cp.IsOffloaded()
	}
	return !cp.IsOffloaded() || cp.IsFetchedCopy()
}
