package webhooks

import (
	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// Defaults that the webhook fills in where the user left a field empty.
const (
	DefaultEnforcement = cqv1.EnforcementEnforce
	DefaultOrphans     = cqv1.OrphanRetain
	DefaultGracePeriod = cqv1.Duration("10m")
)

// DefaultRetention fills enforcement and the orphan policy where they are empty. It never
// rewrites a value the user set, not even into a canonical form ("1024Mi" stays "1024Mi"):
// a second `kubectl apply` of the same file must find nothing to change, and GitOps tools
// must see no drift. Canonical values are in status (hard, effectivePolicy).
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
}
