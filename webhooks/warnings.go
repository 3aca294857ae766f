package webhooks

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// maxWarning is the longest warning kubectl shows on one line, as PRODUCT.md asks.
const maxWarning = 120

// Warning messages for what is legal but suspicious. Formats take the values shown.
const (
	WarnNeverBinds       = "%s is above %s %s, so it never binds"
	WarnMaxSizeAbove     = "%s is above %s %s, so such an archive is always pruned"
	WarnZeroCount        = "0 prunes every unpinned archive"
	WarnZeroStorage      = "0 bytes prunes every unpinned archive"
	WarnEmptySelector    = "{} selects every pod, as if left out"
	WarnOverridden       = "overridden by %s"
	WarnPartlyOverridden = "overridden by %s where it also applies"
	WarnOverrides        = "overrides %s where both apply"
	WarnInForce          = "in force: %s"
	WarnCapped           = "capped by %s at %s, the cluster's ceiling"
)

// warn formats "path: message", cut to maxWarning characters.
func warn(path, format string, args ...any) string {
	w := path + ": " + fmt.Sprintf(format, args...)
	if len(w) > maxWarning {
		w = w[:maxWarning-3] + "..."
	}
	return w
}

// SuspiciousWarnings lists what is legal but probably not meant: a narrower level with a
// higher limit than a wider one, maxCheckpointSize above a storage limit, a limit of 0,
// and an empty pod selector. levels go from the widest to the narrowest.
func SuspiciousWarnings(levels []policy.Level, r *cqv1.RetentionSpec, target *cqv1.QuotaTarget, spec *field.Path) []string {
	var out []string
	for i, narrow := range levels {
		if narrow.Limits == nil {
			continue
		}
		if c := narrow.Limits.Checkpoints; c != nil && *c == 0 {
			out = append(out, warn(narrow.CountPath().String(), WarnZeroCount))
		}
		if s := narrow.Limits.Storage; s != nil && isZero(*s) {
			out = append(out, warn(narrow.StoragePath().String(), WarnZeroStorage))
		}
		for _, wide := range levels[:i] {
			if wide.Limits == nil {
				continue
			}
			if n, w := narrow.Limits.Checkpoints, wide.Limits.Checkpoints; n != nil && w != nil && *n > *w {
				out = append(out, warn(narrow.CountPath().String(), WarnNeverBinds,
					fmt.Sprint(*n), wide.CountPath().String(), fmt.Sprint(*w)))
			}
			if n, w := bytes(narrow.Limits.Storage), bytes(wide.Limits.Storage); n != nil && w != nil && n.Cmp(*w) > 0 {
				out = append(out, warn(narrow.StoragePath().String(), WarnNeverBinds,
					string(*narrow.Limits.Storage), wide.StoragePath().String(), string(*wide.Limits.Storage)))
			}
		}
	}
	if maxSize := bytes(r.MaxCheckpointSize); maxSize != nil && !maxSize.IsZero() {
		for _, l := range levels {
			if l.Limits == nil {
				continue
			}
			if s := bytes(l.Limits.Storage); s != nil && maxSize.Cmp(*s) > 0 {
				out = append(out, warn(spec.Child(policy.NameMaxCheckpointSize).String(), WarnMaxSizeAbove,
					string(*r.MaxCheckpointSize), l.StoragePath().String(), string(*l.Limits.Storage)))
			}
		}
	}
	if target != nil && target.PodSelector != nil && len(target.PodSelector.MatchLabels) == 0 && len(target.PodSelector.MatchExpressions) == 0 {
		out = append(out, warn(spec.Child("target", "podSelector").String(), WarnEmptySelector))
	}
	return out
}

func bytes(s *cqv1.Size) *resource.Quantity {
	if s == nil {
		return nil
	}
	q, err := resource.ParseQuantity(string(*s))
	if err != nil {
		return nil
	}
	return &q
}

// EffectiveWarnings turns the effective policy of a quota into warnings: one per limit
// that another quota overrides or that overrides another, and one line listing the limits
// in force everywhere.
func EffectiveWarnings(reports []policy.LimitReport) []string {
	var out, inForce []string
	for _, r := range reports {
		switch r.State() {
		case cqv1.LimitOverridden:
			out = append(out, warn(r.Limit.Path.String(), WarnOverridden, refs(r.OverriddenBy())))
		case cqv1.LimitPartlyOverridden:
			out = append(out, warn(r.Limit.Path.String(), WarnPartlyOverridden, refs(r.OverriddenBy())))
		case cqv1.LimitCapped:
		default:
			inForce = append(inForce, r.Limit.Name+"="+r.Limit.Written)
		}
		if c := r.Cap(); c != nil {
			out = append(out, warn(r.Limit.Path.String(), WarnCapped, c.By.String(), c.Limit.Written))
		}
		if len(r.Overrides()) > 0 {
			out = append(out, warn(r.Limit.Path.String(), WarnOverrides, refs(r.Overrides())))
		}
	}
	if len(inForce) > 0 {
		out = append(out, warn("spec", WarnInForce, strings.Join(inForce, ", ")))
	}
	return out
}

// refs names up to two quotas and counts the rest, to keep a warning short.
func refs(rs []policy.Ref) string {
	names := make([]string, 0, 2)
	for i, r := range rs {
		if i == 2 {
			names = append(names, fmt.Sprintf("%d more", len(rs)-2))
			break
		}
		names = append(names, r.String())
	}
	return strings.Join(names, ", ")
}

// ConflictErrors turns conflicts into one field error per limit, on the candidate's field,
// naming the other quota and its value.
func ConflictErrors(candidate *policy.Quota, conflicts []policy.Conflict, others []*policy.Quota) field.ErrorList {
	byRef := map[policy.Ref]*policy.Quota{}
	for _, o := range others {
		byRef[o.Ref] = o
	}
	var errs field.ErrorList
	for _, c := range conflicts {
		other := byRef[c.Other]
		for _, k := range c.Keys {
			mine, theirs := candidate.Limit(k), other.Limit(k)
			errs = append(errs, field.Invalid(mine.Path, mine.Written,
				fmt.Sprintf(MsgConflict, c.Other, theirs.Name, theirs.Written)))
		}
	}
	return errs
}
