package webhooks

import (
	"k8s.io/apimachinery/pkg/util/validation/field"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// Defaults that the webhook fills in where the user left a field empty.
const (
	DefaultEnforcement = cqv1.EnforcementEnforce
	DefaultOrphans     = cqv1.OrphanRetain
	DefaultGracePeriod = cqv1.Duration("10m")
)

// DefaultRetention fills enforcement and the orphan policy where they are empty, and
// normalises maxCheckpointSize. It never overwrites a value, so it is idempotent.
func DefaultRetention(r *cqv1.RetentionSpec) {
	if r.Enforcement == "" {
		r.Enforcement = DefaultEnforcement
	}
	if r.Orphans == nil {
		r.Orphans = &cqv1.OrphanPolicy{}
	}
	if r.Orphans.Policy == "" {
		r.Orphans.Policy = DefaultOrphans
	}
	if r.Orphans.GracePeriod == nil {
		grace := DefaultGracePeriod
		r.Orphans.GracePeriod = &grace
	}
	NormalizeSize(r.MaxCheckpointSize)
}

// DefaultLimits normalises the sizes of each level.
func DefaultLimits(levels ...*cqv1.ResourceLimits) {
	for _, l := range levels {
		if l != nil {
			NormalizeSize(l.Storage)
		}
	}
}

// NormalizeSize rewrites a valid size in canonical form ("1024Mi" becomes "1Gi"). An
// invalid size is left alone for validation to explain, and so is a valid size whose
// canonical form has no unit ("0.5Ki" is "512"), because a bare number reads as the
// original operator's megabytes and validation rejects it.
func NormalizeSize(s *cqv1.Size) {
	if s == nil {
		return
	}
	q, err := ParseSize(*s, field.NewPath("size"))
	if err != nil {
		return
	}
	canonical := q.String()
	if canonical != "0" && bareNumber.MatchString(canonical) {
		return
	}
	*s = cqv1.Size(canonical)
}
