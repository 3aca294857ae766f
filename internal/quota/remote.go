package quota

import "github.com/checkpoint-quota/checkpoint-quota/internal/policy"

// Remote lists the twins for the stored archives (policy.Quota.Stored) of the quotas that
// set remoteLimits or an orphan rule, in their order, and the index in quotas of each.
// Governing and computing the twins over the archives in CheckpointStores is the remote
// tier's arithmetic: the same precedence, the same ceilings, the same pruning oldest first,
// with limits named "remoteLimits.*" and the quotas' own orphan rules (docs/offload.md,
// "Remote limits" and "Orphans in the store").
func Remote(quotas []*policy.Quota) (twins []*policy.Quota, of []int) {
	for i, q := range quotas {
		if t := q.Stored(); t != nil {
			twins = append(twins, t)
			of = append(of, i)
		}
	}
	return twins, of
}
