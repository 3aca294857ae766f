package webhooks

import (
	"k8s.io/apimachinery/pkg/util/validation/field"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// ValidateRemoteLimits checks spec.remoteLimits as spec.limits and maxAge are checked: the
// counts and sizes of each level, their contradictions, and maxAge. levels are
// policy.CheckpointQuotaRemoteLevels or policy.ClusterQuotaRemoteLevels.
func ValidateRemoteLimits(levels []policy.Level, maxAge *cqv1.Duration) field.ErrorList {
	var errs field.ErrorList
	for _, l := range levels {
		errs = append(errs, validateLevel(l)...)
	}
	return append(errs, ValidateMaxAge(maxAge, policy.RemoteMaxAgePath())...)
}

// remoteWarnings are the warnings of spec.remoteLimits on their own: a narrower level
// above a wider one, and 0.
func remoteWarnings(levels []policy.Level) []string {
	return SuspiciousWarnings(levels, &cqv1.RetentionSpec{}, nil, field.NewPath("spec"))
}

// remoteConflicts are the conflicts of the candidate's remoteLimits with the remoteLimits
// of others, as field errors on spec.remoteLimits; and the reports of its remote limits
// (in force, overridden, capped by a cluster quota's remoteLimits), from the quotas alone.
func remoteConflicts(candidate *policy.Quota, others []*policy.Quota, nsLabels map[string]map[string]string) (field.ErrorList, []policy.LimitReport) {
	if candidate.Remote == nil {
		return nil, nil
	}
	var twins []*policy.Quota
	for _, o := range others {
		if o.Remote != nil {
			twins = append(twins, o.Remote)
		}
	}
	if errs := ConflictErrors(candidate.Remote, policy.Conflicts(candidate.Remote, twins), twins); len(errs) > 0 {
		return errs, nil
	}
	return nil, policy.Describe(candidate.Remote, twins, nsLabels)
}
