// Package builder makes API objects for tests with fluent setters: builder.Quota("q", "shop").PerContainer(10, "1Gi").Obj().
package builder

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// QuotaBuilder builds a CheckpointQuota.
type QuotaBuilder struct{ q cqv1.CheckpointQuota }

// Quota starts a CheckpointQuota with no limits.
func Quota(name, namespace string) *QuotaBuilder {
	return &QuotaBuilder{q: cqv1.CheckpointQuota{
		TypeMeta:   metav1.TypeMeta{APIVersion: cqv1.GroupVersion.String(), Kind: "CheckpointQuota"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
	}}
}

// Obj returns the built object.
func (b *QuotaBuilder) Obj() *cqv1.CheckpointQuota { return b.q.DeepCopy() }

// Total sets limits.total. An empty size leaves storage unlimited; a negative count leaves the count unlimited.
func (b *QuotaBuilder) Total(checkpoints int64, storage string) *QuotaBuilder {
	b.q.Spec.Limits.Total = Limits(checkpoints, storage)
	return b
}

// PerPod sets limits.perPod.
func (b *QuotaBuilder) PerPod(checkpoints int64, storage string) *QuotaBuilder {
	b.q.Spec.Limits.PerPod = Limits(checkpoints, storage)
	return b
}

// PerContainer sets limits.perContainer.
func (b *QuotaBuilder) PerContainer(checkpoints int64, storage string) *QuotaBuilder {
	b.q.Spec.Limits.PerContainer = Limits(checkpoints, storage)
	return b
}

// PodNames targets pods by name.
func (b *QuotaBuilder) PodNames(names ...string) *QuotaBuilder {
	b.target().PodNames = names
	return b
}

// ContainerNames targets containers by name.
func (b *QuotaBuilder) ContainerNames(names ...string) *QuotaBuilder {
	b.target().ContainerNames = names
	return b
}

// PodSelector targets pods with these labels.
func (b *QuotaBuilder) PodSelector(labels map[string]string) *QuotaBuilder {
	b.target().PodSelector = &cqv1.LabelSelector{MatchLabels: labels}
	return b
}

func (b *QuotaBuilder) target() *cqv1.QuotaTarget {
	if b.q.Spec.Target == nil {
		b.q.Spec.Target = &cqv1.QuotaTarget{}
	}
	return b.q.Spec.Target
}

// MaxCheckpointSize sets maxCheckpointSize.
func (b *QuotaBuilder) MaxCheckpointSize(size string) *QuotaBuilder {
	s := cqv1.Size(size)
	b.q.Spec.MaxCheckpointSize = &s
	return b
}

// MaxAge sets maxAge.
func (b *QuotaBuilder) MaxAge(age string) *QuotaBuilder {
	d := cqv1.Duration(age)
	b.q.Spec.MaxAge = &d
	return b
}

// Orphans sets the orphan policy; an empty grace period is left out.
func (b *QuotaBuilder) Orphans(policy cqv1.OrphanPolicyType, grace string) *QuotaBuilder {
	b.q.Spec.Orphans = Orphans(policy, grace)
	return b
}

// Enforcement sets the enforcement mode.
func (b *QuotaBuilder) Enforcement(m cqv1.EnforcementMode) *QuotaBuilder {
	b.q.Spec.Enforcement = m
	return b
}

// ClusterQuotaBuilder builds a ClusterCheckpointQuota.
type ClusterQuotaBuilder struct{ q cqv1.ClusterCheckpointQuota }

// ClusterQuota starts a ClusterCheckpointQuota with no limits.
func ClusterQuota(name string) *ClusterQuotaBuilder {
	return &ClusterQuotaBuilder{q: cqv1.ClusterCheckpointQuota{
		TypeMeta:   metav1.TypeMeta{APIVersion: cqv1.GroupVersion.String(), Kind: "ClusterCheckpointQuota"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
	}}
}

// Obj returns the built object.
func (b *ClusterQuotaBuilder) Obj() *cqv1.ClusterCheckpointQuota { return b.q.DeepCopy() }

// NamespaceSelector selects namespaces with these labels.
func (b *ClusterQuotaBuilder) NamespaceSelector(labels map[string]string) *ClusterQuotaBuilder {
	b.q.Spec.NamespaceSelector = &cqv1.LabelSelector{MatchLabels: labels}
	return b
}

// Total sets limits.total.
func (b *ClusterQuotaBuilder) Total(checkpoints int64, storage string) *ClusterQuotaBuilder {
	b.q.Spec.Limits.Total = Limits(checkpoints, storage)
	return b
}

// PerNamespace sets limits.perNamespace.
func (b *ClusterQuotaBuilder) PerNamespace(checkpoints int64, storage string) *ClusterQuotaBuilder {
	b.q.Spec.Limits.PerNamespace = Limits(checkpoints, storage)
	return b
}

// PerPod sets limits.perPod.
func (b *ClusterQuotaBuilder) PerPod(checkpoints int64, storage string) *ClusterQuotaBuilder {
	b.q.Spec.Limits.PerPod = Limits(checkpoints, storage)
	return b
}

// PerContainer sets limits.perContainer.
func (b *ClusterQuotaBuilder) PerContainer(checkpoints int64, storage string) *ClusterQuotaBuilder {
	b.q.Spec.Limits.PerContainer = Limits(checkpoints, storage)
	return b
}

// PodNames targets pods by name.
func (b *ClusterQuotaBuilder) PodNames(names ...string) *ClusterQuotaBuilder {
	b.target().PodNames = names
	return b
}

// ContainerNames targets containers by name.
func (b *ClusterQuotaBuilder) ContainerNames(names ...string) *ClusterQuotaBuilder {
	b.target().ContainerNames = names
	return b
}

func (b *ClusterQuotaBuilder) target() *cqv1.QuotaTarget {
	if b.q.Spec.Target == nil {
		b.q.Spec.Target = &cqv1.QuotaTarget{}
	}
	return b.q.Spec.Target
}

// MaxCheckpointSize sets maxCheckpointSize.
func (b *ClusterQuotaBuilder) MaxCheckpointSize(size string) *ClusterQuotaBuilder {
	s := cqv1.Size(size)
	b.q.Spec.MaxCheckpointSize = &s
	return b
}

// MaxAge sets maxAge.
func (b *ClusterQuotaBuilder) MaxAge(age string) *ClusterQuotaBuilder {
	d := cqv1.Duration(age)
	b.q.Spec.MaxAge = &d
	return b
}

// Orphans sets the orphan policy.
func (b *ClusterQuotaBuilder) Orphans(policy cqv1.OrphanPolicyType, grace string) *ClusterQuotaBuilder {
	b.q.Spec.Orphans = Orphans(policy, grace)
	return b
}

// Enforcement sets the enforcement mode.
func (b *ClusterQuotaBuilder) Enforcement(m cqv1.EnforcementMode) *ClusterQuotaBuilder {
	b.q.Spec.Enforcement = m
	return b
}

// Limits makes ResourceLimits. A negative count leaves the count out; an empty storage leaves storage out.
func Limits(checkpoints int64, storage string) *cqv1.ResourceLimits {
	l := &cqv1.ResourceLimits{}
	if checkpoints >= 0 {
		l.Checkpoints = &checkpoints
	}
	if storage != "" {
		s := cqv1.Size(storage)
		l.Storage = &s
	}
	return l
}

// Orphans makes an OrphanPolicy; an empty grace period is left out.
func Orphans(policy cqv1.OrphanPolicyType, grace string) *cqv1.OrphanPolicy {
	o := &cqv1.OrphanPolicy{Policy: policy}
	if grace != "" {
		d := cqv1.Duration(grace)
		o.GracePeriod = &d
	}
	return o
}

// CheckpointBuilder builds a Checkpoint as the node agent would publish it.
type CheckpointBuilder struct{ c cqv1.Checkpoint }

// Checkpoint starts a Checkpoint of a container's archive on a node.
func Checkpoint(name, namespace string) *CheckpointBuilder {
	return &CheckpointBuilder{c: cqv1.Checkpoint{
		TypeMeta:   metav1.TypeMeta{APIVersion: cqv1.GroupVersion.String(), Kind: "Checkpoint"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
	}}
}

// Obj returns the built object.
func (b *CheckpointBuilder) Obj() *cqv1.Checkpoint { return b.c.DeepCopy() }

// Of sets the pod, pod UID and container.
func (b *CheckpointBuilder) Of(pod, uid, container string) *CheckpointBuilder {
	a := b.archive()
	a.PodName, a.PodUID, a.ContainerName = pod, types.UID(uid), container
	return b
}

// On sets the node, directory and file name.
func (b *CheckpointBuilder) On(node, dir, file string) *CheckpointBuilder {
	a := b.archive()
	a.NodeName, a.Directory, a.FileName = node, dir, file
	return b
}

// Size sets the size in bytes and its readable form.
func (b *CheckpointBuilder) Size(bytes int64, readable string) *CheckpointBuilder {
	a := b.archive()
	a.SizeBytes, a.Size = bytes, readable
	return b
}

// At sets the checkpoint time.
func (b *CheckpointBuilder) At(t metav1.Time) *CheckpointBuilder {
	b.archive().CheckpointTime = t
	return b
}

// OrphanOf marks the archive as taken in a namespace that is gone.
func (b *CheckpointBuilder) OrphanOf(namespace string) *CheckpointBuilder {
	b.archive().OrphanOf = namespace
	b.label(cqv1.LabelOrphanOf, namespace)
	return b
}

func (b *CheckpointBuilder) archive() *cqv1.ArchiveSource {
	if b.c.Spec.Archive == nil {
		b.c.Spec.Archive = &cqv1.ArchiveSource{}
	}
	return b.c.Spec.Archive
}

// Pinned sets spec.pinned.
func (b *CheckpointBuilder) Pinned() *CheckpointBuilder {
	b.c.Spec.Pinned = true
	return b
}

func (b *CheckpointBuilder) label(k, v string) {
	if b.c.Labels == nil {
		b.c.Labels = map[string]string{}
	}
	b.c.Labels[k] = v
}
