package webhooks

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// +kubebuilder:webhook:path=/mutate-checkpointquota-dev-v1alpha1-checkpointquota,mutating=true,failurePolicy=fail,sideEffects=None,groups=checkpointquota.dev,resources=checkpointquotas,verbs=create;update,versions=v1alpha1,name=mcheckpointquota.checkpointquota.dev,admissionReviewVersions=v1,timeoutSeconds=10
// +kubebuilder:webhook:path=/validate-checkpointquota-dev-v1alpha1-checkpointquota,mutating=false,failurePolicy=fail,sideEffects=None,groups=checkpointquota.dev,resources=checkpointquotas,verbs=create;update,versions=v1alpha1,name=vcheckpointquota.checkpointquota.dev,admissionReviewVersions=v1,timeoutSeconds=10

// CheckpointQuotaWebhook defaults and validates CheckpointQuotas.
type CheckpointQuotaWebhook struct {
	// Quotas reads the namespace's other quotas and the cluster quotas, to find conflicts
	// and describe the effective policy.
	Quotas *QuotaReader
}

var (
	_ admission.Defaulter[*cqv1.CheckpointQuota] = &CheckpointQuotaWebhook{}
	_ admission.Validator[*cqv1.CheckpointQuota] = &CheckpointQuotaWebhook{}
)

// Default fills what the user left empty and rewrites nothing else.
func (w *CheckpointQuotaWebhook) Default(_ context.Context, q *cqv1.CheckpointQuota) error {
	DefaultCheckpointQuota(q)
	return nil
}

// DefaultCheckpointQuota fills enforcement and the orphan policy where they are empty.
func DefaultCheckpointQuota(q *cqv1.CheckpointQuota) {
	DefaultRetention(&q.Spec.RetentionSpec)
}

// ValidateCreate validates a new quota.
func (w *CheckpointQuotaWebhook) ValidateCreate(ctx context.Context, q *cqv1.CheckpointQuota) (admission.Warnings, error) {
	return w.validate(ctx, nil, q)
}

// ValidateUpdate validates a changed quota.
func (w *CheckpointQuotaWebhook) ValidateUpdate(ctx context.Context, old, q *cqv1.CheckpointQuota) (admission.Warnings, error) {
	return w.validate(ctx, old, q)
}

// ValidateDelete allows every deletion.
func (w *CheckpointQuotaWebhook) ValidateDelete(context.Context, *cqv1.CheckpointQuota) (admission.Warnings, error) {
	return nil, nil
}

func (w *CheckpointQuotaWebhook) validate(ctx context.Context, old, q *cqv1.CheckpointQuota) (admission.Warnings, error) {
	// A metadata-only update (a finalizer, a label) must pass even if the spec predates a
	// rule or now conflicts: blocking it could keep the quota from ever being deleted.
	if old != nil && equality.Semantic.DeepEqual(old.Spec, q.Spec) {
		return nil, nil
	}
	if errs := ValidateCheckpointQuota(q); len(errs) > 0 {
		return nil, invalid("CheckpointQuota", q.Name, errs)
	}
	candidate, err := policy.FromCheckpointQuota(q)
	if err != nil { // validation above accepts only what parses
		return nil, invalid("CheckpointQuota", q.Name, field.ErrorList{field.InternalError(field.NewPath("spec"), err)})
	}
	quotas, err := w.Quotas.NamespaceQuotas(ctx, q.Namespace)
	if err != nil {
		return nil, unavailable("listing CheckpointQuotas", err)
	}
	clusterQuotas, err := w.Quotas.CachedClusterQuotas(ctx)
	if err != nil {
		return nil, unavailable("listing ClusterCheckpointQuotas", err)
	}
	nsLabels := map[string]map[string]string{}
	switch labels, known, err := w.Quotas.NamespaceLabels(ctx, q.Namespace); {
	case err != nil:
		return nil, unavailable("reading namespace "+q.Namespace, err)
	case known:
		nsLabels[q.Namespace] = labels
	}
	switch errs, err := w.validateNamespacedOffload(ctx, q, nsLabels[q.Namespace]); {
	case err != nil:
		return nil, unavailable("reading CheckpointStore "+q.Spec.Offload.Store, err)
	case len(errs) > 0:
		return nil, invalid("CheckpointQuota", q.Name, errs)
	}
	others := append(normalise(w.Quotas.Policies, quotas, policy.FromCheckpointQuota), normalise(w.Quotas.Policies, clusterQuotas, policy.FromClusterQuota)...)
	errs := ConflictErrors(candidate, policy.Conflicts(candidate, others), others)
	remoteErrs, remoteReports := remoteConflicts(candidate, others, nsLabels)
	if errs = append(errs, remoteErrs...); len(errs) > 0 {
		return nil, invalid("CheckpointQuota", q.Name, errs)
	}
	warnings := SuspiciousWarnings(policy.CheckpointQuotaLevels(q), &q.Spec.RetentionSpec, q.Spec.Target, field.NewPath("spec"))
	warnings = append(warnings, remoteWarnings(policy.CheckpointQuotaRemoteLevels(q))...)
	return append(warnings, EffectiveWarnings(append(policy.Describe(candidate, others, nsLabels), remoteReports...))...), nil
}
