package builder

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// Offload sets offload.store.
func (b *QuotaBuilder) Offload(store string) *QuotaBuilder {
	b.q.Spec.Offload = &cqv1.OffloadSpec{Store: store}
	return b
}

func (b *QuotaBuilder) remote() *cqv1.RemoteLimits {
	if b.q.Spec.RemoteLimits == nil {
		b.q.Spec.RemoteLimits = &cqv1.RemoteLimits{}
	}
	return b.q.Spec.RemoteLimits
}

// RemoteTotal sets remoteLimits.total.
func (b *QuotaBuilder) RemoteTotal(checkpoints int64, storage string) *QuotaBuilder {
	b.remote().Total = Limits(checkpoints, storage)
	return b
}

// RemotePerPod sets remoteLimits.perPod.
func (b *QuotaBuilder) RemotePerPod(checkpoints int64, storage string) *QuotaBuilder {
	b.remote().PerPod = Limits(checkpoints, storage)
	return b
}

// RemotePerContainer sets remoteLimits.perContainer.
func (b *QuotaBuilder) RemotePerContainer(checkpoints int64, storage string) *QuotaBuilder {
	b.remote().PerContainer = Limits(checkpoints, storage)
	return b
}

// RemoteMaxAge sets remoteLimits.maxAge.
func (b *QuotaBuilder) RemoteMaxAge(age string) *QuotaBuilder {
	d := cqv1.Duration(age)
	b.remote().MaxAge = &d
	return b
}

// Offload sets offload.store.
func (b *ClusterQuotaBuilder) Offload(store string) *ClusterQuotaBuilder {
	b.q.Spec.Offload = &cqv1.OffloadSpec{Store: store}
	return b
}

func (b *ClusterQuotaBuilder) remote() *cqv1.ClusterRemoteLimits {
	if b.q.Spec.RemoteLimits == nil {
		b.q.Spec.RemoteLimits = &cqv1.ClusterRemoteLimits{}
	}
	return b.q.Spec.RemoteLimits
}

// RemoteTotal sets remoteLimits.total.
func (b *ClusterQuotaBuilder) RemoteTotal(checkpoints int64, storage string) *ClusterQuotaBuilder {
	b.remote().Total = Limits(checkpoints, storage)
	return b
}

// RemotePerNamespace sets remoteLimits.perNamespace.
func (b *ClusterQuotaBuilder) RemotePerNamespace(checkpoints int64, storage string) *ClusterQuotaBuilder {
	b.remote().PerNamespace = Limits(checkpoints, storage)
	return b
}

// RemotePerPod sets remoteLimits.perPod.
func (b *ClusterQuotaBuilder) RemotePerPod(checkpoints int64, storage string) *ClusterQuotaBuilder {
	b.remote().PerPod = Limits(checkpoints, storage)
	return b
}

// RemotePerContainer sets remoteLimits.perContainer.
func (b *ClusterQuotaBuilder) RemotePerContainer(checkpoints int64, storage string) *ClusterQuotaBuilder {
	b.remote().PerContainer = Limits(checkpoints, storage)
	return b
}

// RemoteMaxAge sets remoteLimits.maxAge.
func (b *ClusterQuotaBuilder) RemoteMaxAge(age string) *ClusterQuotaBuilder {
	d := cqv1.Duration(age)
	b.remote().MaxAge = &d
	return b
}

// StoredIn marks the Checkpoint as offloaded to a store: status.offload and status.location,
// as the manager and the node agent write them.
func (b *CheckpointBuilder) StoredIn(store, key string, at metav1.Time) *CheckpointBuilder {
	b.c.Status.Offload = &cqv1.OffloadRequest{Store: store}
	b.c.Status.Location = &cqv1.ArchiveLocation{Store: store, Bucket: "archives", Key: key,
		SHA256: "0000000000000000000000000000000000000000000000000000000000000000", StoredTime: at}
	return b
}
