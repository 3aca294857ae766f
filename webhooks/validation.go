// Package webhooks holds the admission webhooks of both quota kinds: defaulting, validation with a hint per field, conflicts and warnings.
package webhooks

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// Messages of field errors. Tests and docs/admission.md quote them; those with verbs are formats.
const (
	MsgSizeEmpty         = `must not be empty: write a quantity such as "10Gi", or leave the field out for no limit`
	MsgSizeMalformed     = `not a quantity: write a number and a unit, such as "10Gi", "500Mi" or "2G"`
	MsgSizeDidYouMean    = `not a quantity: did you mean %q? Units are Ki, Mi, Gi, Ti (powers of 1024) or k, M, G, T`
	MsgSizeNegative      = `must not be negative: write a size such as "10Gi", or leave the field out for no limit`
	MsgSizeFraction      = `is a fraction of a byte ("m" means milli, a thousandth): sizes are whole bytes; write %q for mebibytes`
	MsgSizeNotWhole      = `sizes are whole bytes: write a value such as "512Mi" that is a whole number of bytes`
	MsgSizeBareNumber    = `has no unit, so it means bytes, but the original operator read a bare number as MB: write %q for %s MiB`
	MsgSizeTooLarge      = `is too large: write a size below "8Ei"`
	MsgCountNegative     = "must be 0 or more: 0 prunes every unpinned archive; leave the field out for no limit"
	MsgDurationDays      = `not a duration: Go durations have no days or weeks; write %q`
	MsgDurationBad       = `not a duration: write hours, minutes or seconds, such as "168h", "30m" or "90s"`
	MsgMaxAgeNotPos      = `must be more than 0: write a duration such as "168h" (7 days), or leave the field out for no age limit`
	MsgGraceNegative     = `must not be negative: write a duration such as "10m"; "0s" deletes orphans as soon as they are found`
	MsgEmptyPodList      = "an empty list selects no pod: name at least one pod, or leave the field out to select every pod"
	MsgEmptyContainers   = "an empty list selects no container: name at least one, or leave the field out to select every container"
	MsgBadPodName        = `not a valid pod name: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, such as "cache-0"`
	MsgBadContainerName  = `not a valid container name: use lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit, such as "redis"`
	MsgSelectorOperators = "use In, NotIn, Exists or DoesNotExist"
	MsgStorageZeroCount  = "storage %s keeps no archive (every archive has bytes), which contradicts %s: %d; set a positive storage, or checkpoints: 0"
	MsgCountStorageZero  = "contradicts %s: 0, which keeps no archive: set checkpoints: 0 too, or a positive storage"
	MsgMaxSizeZero       = "maxCheckpointSize 0 prunes every archive, which contradicts %s: %d; leave maxCheckpointSize out, or set a positive size"
	MsgCountMaxSizeZero  = "contradicts maxCheckpointSize: 0, which prunes every archive: leave maxCheckpointSize out, or set a positive size"
	MsgConflict          = "conflicts with %s, which sets %s to %s for some of the same archives: set it in one quota only, or make their targets disjoint"
)

var (
	// sizeWithUnit splits "2GB" or "500 mb" into number and unit, to suggest a valid unit.
	sizeWithUnit = regexp.MustCompile(`^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]+)\s*$`)
	// bareNumber is a size without a unit or exponent.
	bareNumber = regexp.MustCompile(`^[+-]?[0-9]+(\.[0-9]*)?$`)
	// daysOrWeeks is a duration written with a unit Go does not know.
	daysOrWeeks = regexp.MustCompile(`^([0-9]+)\s*(d|days?|w|weeks?)$`)
	// unitFixes maps a mistyped unit, lower-cased, to the binary suffix it most likely means.
	unitFixes = map[string]string{
		"k": "Ki", "kb": "Ki", "kib": "Ki", "ki": "Ki",
		"mb": "Mi", "mib": "Mi", "mi": "Mi",
		"g": "Gi", "gb": "Gi", "gib": "Gi", "gi": "Gi",
		"t": "Ti", "tb": "Ti", "tib": "Ti", "ti": "Ti",
		"p": "Pi", "pb": "Pi", "pib": "Pi", "pi": "Pi",
	}
	maxSize = resource.NewQuantity(math.MaxInt64, resource.BinarySI)
)

// ParseSize parses a size and says, as a field error at path, what is wrong with it.
func ParseSize(s cqv1.Size, path *field.Path) (resource.Quantity, *field.Error) {
	str := string(s)
	if strings.TrimSpace(str) == "" {
		return resource.Quantity{}, field.Invalid(path, str, MsgSizeEmpty)
	}
	q, err := resource.ParseQuantity(str)
	if err != nil {
		if m := sizeWithUnit.FindStringSubmatch(str); m != nil {
			if unit, ok := unitFixes[strings.ToLower(m[2])]; ok {
				return q, field.Invalid(path, str, fmt.Sprintf(MsgSizeDidYouMean, m[1]+unit))
			}
		}
		return q, field.Invalid(path, str, MsgSizeMalformed)
	}
	whole := q.DeepCopy()
	switch {
	case q.Sign() < 0:
		return q, field.Invalid(path, str, MsgSizeNegative)
	case !whole.RoundUp(0):
		if strings.HasSuffix(str, "m") {
			return q, field.Invalid(path, str, fmt.Sprintf(MsgSizeFraction, strings.TrimSuffix(str, "m")+"Mi"))
		}
		return q, field.Invalid(path, str, MsgSizeNotWhole)
	case q.Cmp(*maxSize) >= 0: // ParseQuantity caps larger values at the maximum
		return q, field.Invalid(path, str, MsgSizeTooLarge)
	case bareNumber.MatchString(str) && !q.IsZero():
		return q, field.Invalid(path, str, fmt.Sprintf(MsgSizeBareNumber, str+"Mi", str))
	}
	return q, nil
}

// ValidateSize checks a size; nil (left out) is valid.
func ValidateSize(s *cqv1.Size, path *field.Path) field.ErrorList {
	if s == nil {
		return nil
	}
	if _, err := ParseSize(*s, path); err != nil {
		return field.ErrorList{err}
	}
	return nil
}

// ValidateCount checks a count of archives. The schema's CEL rule says the same, so that
// the message is the same whichever check answers.
func ValidateCount(n *int64, path *field.Path) field.ErrorList {
	if n != nil && *n < 0 {
		return field.ErrorList{field.Invalid(path, *n, MsgCountNegative)}
	}
	return nil
}

// parseDuration parses a Go duration, suggesting hours for days and weeks.
func parseDuration(d cqv1.Duration, path *field.Path) (time.Duration, *field.Error) {
	v, err := d.Duration()
	if err == nil {
		return v, nil
	}
	if m := daysOrWeeks.FindStringSubmatch(strings.TrimSpace(string(d))); m != nil {
		n, _ := strconv.Atoi(m[1])
		hours := n * 24
		if strings.HasPrefix(m[2], "w") {
			hours *= 7
		}
		return 0, field.Invalid(path, string(d), fmt.Sprintf(MsgDurationDays, fmt.Sprintf("%dh", hours)))
	}
	return 0, field.Invalid(path, string(d), MsgDurationBad)
}

// ValidateMaxAge checks maxAge: a duration above 0.
func ValidateMaxAge(d *cqv1.Duration, path *field.Path) field.ErrorList {
	if d == nil {
		return nil
	}
	v, err := parseDuration(*d, path)
	if err != nil {
		return field.ErrorList{err}
	}
	if v <= 0 {
		return field.ErrorList{field.Invalid(path, string(*d), MsgMaxAgeNotPos)}
	}
	return nil
}

// ValidateOrphans checks the orphan policy and its grace period.
func ValidateOrphans(o *cqv1.OrphanPolicy, path *field.Path) field.ErrorList {
	if o == nil {
		return nil
	}
	var errs field.ErrorList
	switch o.Policy {
	case "", cqv1.OrphanRetain, cqv1.OrphanDelete:
	default:
		errs = append(errs, field.NotSupported(path.Child("policy"), o.Policy, []string{string(cqv1.OrphanRetain), string(cqv1.OrphanDelete)}))
	}
	if o.GracePeriod != nil {
		grace := path.Child("gracePeriod")
		v, err := parseDuration(*o.GracePeriod, grace)
		switch {
		case err != nil:
			errs = append(errs, err)
		case v < 0:
			errs = append(errs, field.Invalid(grace, string(*o.GracePeriod), MsgGraceNegative))
		}
	}
	return errs
}

// ValidateEnforcement checks the enforcement mode; empty is defaulted to Enforce.
func ValidateEnforcement(m cqv1.EnforcementMode, path *field.Path) field.ErrorList {
	switch m {
	case "", cqv1.EnforcementEnforce, cqv1.EnforcementDryRun:
		return nil
	}
	return field.ErrorList{field.NotSupported(path, m, []string{string(cqv1.EnforcementEnforce), string(cqv1.EnforcementDryRun)})}
}

// ValidateTarget checks a quota's target: name lists are not empty and hold valid names,
// and the pod selector parses.
func ValidateTarget(t *cqv1.QuotaTarget, path *field.Path) field.ErrorList {
	if t == nil {
		return nil
	}
	var errs field.ErrorList
	errs = append(errs, ValidateSelector(t.PodSelector.Meta(), path.Child("podSelector"))...)
	errs = append(errs, validateNames(t.PodNames, path.Child("podNames"), MsgEmptyPodList, MsgBadPodName, validation.IsDNS1123Subdomain)...)
	errs = append(errs, validateNames(t.ContainerNames, path.Child("containerNames"), MsgEmptyContainers, MsgBadContainerName, validation.IsDNS1123Label)...)
	return errs
}

// ValidateSelector checks a label selector as Kubernetes does for its own selectors.
func ValidateSelector(s *metav1.LabelSelector, path *field.Path) field.ErrorList {
	if s == nil {
		return nil
	}
	errs := metav1validation.ValidateLabelSelector(s, metav1validation.LabelSelectorValidationOptions{}, path)
	for _, e := range errs {
		// Kubernetes says only "not a valid selector operator"; say which ones are.
		if e.Type == field.ErrorTypeInvalid && strings.HasSuffix(e.Field, ".operator") {
			e.Detail += ": " + MsgSelectorOperators
		}
	}
	return errs
}

func validateNames(names []string, path *field.Path, emptyMsg, badMsg string, check func(string) []string) field.ErrorList {
	// nil is "left out"; a non-nil empty list was written as [] and selects nothing.
	if names != nil && len(names) == 0 {
		return field.ErrorList{field.Invalid(path, names, emptyMsg)}
	}
	var errs field.ErrorList
	for i, n := range names {
		if len(check(n)) > 0 {
			errs = append(errs, field.Invalid(path.Index(i), n, badMsg))
		}
	}
	return errs
}

// ValidateLevels checks the counts and sizes of each level, and the settings that
// contradict each other, reporting a contradiction on both fields.
func ValidateLevels(levels []policy.Level, r *cqv1.RetentionSpec, spec *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, l := range levels {
		errs = append(errs, validateLevel(l)...)
	}
	maxSize := spec.Child(policy.NameMaxCheckpointSize)
	errs = append(errs, ValidateSize(r.MaxCheckpointSize, maxSize)...)
	if r.MaxCheckpointSize != nil && isZero(*r.MaxCheckpointSize) {
		for _, l := range levels {
			if l.Limits != nil && l.Limits.Checkpoints != nil && *l.Limits.Checkpoints > 0 {
				count := l.CountPath()
				errs = append(errs,
					field.Invalid(maxSize, string(*r.MaxCheckpointSize), fmt.Sprintf(MsgMaxSizeZero, count, *l.Limits.Checkpoints)),
					field.Invalid(count, *l.Limits.Checkpoints, MsgCountMaxSizeZero))
			}
		}
	}
	errs = append(errs, ValidateMaxAge(r.MaxAge, spec.Child(policy.NameMaxAge))...)
	errs = append(errs, ValidateOrphans(r.Orphans, spec.Child(policy.NameOrphans))...)
	errs = append(errs, ValidateEnforcement(r.Enforcement, spec.Child("enforcement"))...)
	errs = append(errs, ValidateOffload(r.Offload, spec.Child("offload"))...)
	return errs
}

// validateLevel checks the count and size of one level, and their contradiction.
func validateLevel(l policy.Level) field.ErrorList {
	if l.Limits == nil {
		return nil
	}
	count, storage := l.CountPath(), l.StoragePath()
	errs := ValidateCount(l.Limits.Checkpoints, count)
	errs = append(errs, ValidateSize(l.Limits.Storage, storage)...)
	n := l.Limits.Checkpoints
	if l.Limits.Storage != nil && n != nil && *n > 0 && isZero(*l.Limits.Storage) {
		errs = append(errs,
			field.Invalid(storage, string(*l.Limits.Storage), fmt.Sprintf(MsgStorageZeroCount, *l.Limits.Storage, "checkpoints", *n)),
			field.Invalid(count, *n, fmt.Sprintf(MsgCountStorageZero, "storage")))
	}
	return errs
}

func isZero(s cqv1.Size) bool {
	q, err := resource.ParseQuantity(string(s))
	return err == nil && q.IsZero()
}

// ValidateCheckpointQuota checks a CheckpointQuota on its own, without other quotas.
func ValidateCheckpointQuota(q *cqv1.CheckpointQuota) field.ErrorList {
	spec := field.NewPath("spec")
	errs := ValidateTarget(q.Spec.Target, spec.Child("target"))
	errs = append(errs, ValidateLevels(policy.CheckpointQuotaLevels(q), &q.Spec.RetentionSpec, spec)...)
	return append(errs, ValidateRemoteLimits(policy.CheckpointQuotaRemoteLevels(q), q.Spec.RemoteLimits.Age())...)
}

// ValidateClusterCheckpointQuota checks a ClusterCheckpointQuota on its own.
func ValidateClusterCheckpointQuota(q *cqv1.ClusterCheckpointQuota) field.ErrorList {
	spec := field.NewPath("spec")
	errs := ValidateSelector(q.Spec.NamespaceSelector.Meta(), spec.Child("namespaceSelector"))
	errs = append(errs, ValidateTarget(q.Spec.Target, spec.Child("target"))...)
	errs = append(errs, ValidateLevels(policy.ClusterQuotaLevels(q), &q.Spec.RetentionSpec, spec)...)
	errs = append(errs, ValidateRemoteLimits(policy.ClusterQuotaRemoteLevels(q), q.Spec.RemoteLimits.Age())...)
	return append(errs, ValidateNodeRules(q, spec)...)
}
