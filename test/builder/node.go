package builder

import (
	"k8s.io/apimachinery/pkg/util/intstr"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// PerNode sets limits.perNode; a negative count or an empty storage leaves that limit out.
func (b *ClusterQuotaBuilder) PerNode(checkpoints int64, storage string) *ClusterQuotaBuilder {
	b.q.Spec.Limits.PerNode = Limits(checkpoints, storage)
	return b
}

// MinFree sets nodeFilesystem.minFree, as a quantity ("50Gi") or a percentage ("15%").
func (b *ClusterQuotaBuilder) MinFree(v string) *ClusterQuotaBuilder {
	mf := intstr.FromString(v)
	b.q.Spec.NodeFilesystem = &cqv1.NodeFilesystemSpec{MinFree: &mf}
	return b
}
