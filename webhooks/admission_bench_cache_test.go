package webhooks

import (
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// withPolicies gives the reader the parsed policies the manager shares.
func withPolicies(r *QuotaReader) { r.Policies = policy.NewParsed() }

// cached makes a quota what the manager's cache holds (controllers.CacheOptions).
func cached(obj client.Object) {
	switch q := obj.(type) {
	case *cqv1.CheckpointQuota:
		p, _ := policy.FromCheckpointQuota(q)
		policy.ShareTarget(q.Spec.Target, p)
	case *cqv1.ClusterCheckpointQuota:
		p, _ := policy.FromClusterQuota(q)
		policy.ShareTarget(q.Spec.Target, p)
		q.Spec.NamespaceSelector = policy.SharedSelector(p.NamespaceSelector)
	}
}
