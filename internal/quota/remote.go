package quota

import "github.com/checkpoint-quota/checkpoint-quota/internal/policy"

// Remote lists the remote twins (policy.Quota.Remote) of the quotas that set remoteLimits,
// in their order, and the index in quotas of each. Governing and computing the twins over
// the archives in CheckpointStores is the remote tier's arithmetic: the same precedence,
// the same ceilings, the same pruning oldest first, with limits named "remoteLimits.*"
// (docs/offload.md, "Remote limits").
func Remote(quotas []*policy.Quota) (twins []*policy.Quota, of []int) {
	for i, q := range quotas {
		if q.Remote != nil {
			twins = append(twins, q.Remote)
			of = append(of, i)
		}
	}
	return twins, of
}
