package webhooks

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// +kubebuilder:webhook:path=/mutate-checkpointquota-dev-v1alpha1-clustercheckpointquota,mutating=true,failurePolicy=fail,sideEffects=None,groups=checkpointquota.dev,resources=clustercheckpointquotas,verbs=create;update,versions=v1alpha1,name=mclustercheckpointquota.checkpointquota.dev,admissionReviewVersions=v1,timeoutSeconds=10
// +kubebuilder:webhook:path=/validate-checkpointquota-dev-v1alpha1-clustercheckpointquota,mutating=false,failurePolicy=fail,sideEffects=None,groups=checkpointquota.dev,resources=clustercheckpointquotas,verbs=create;update,versions=v1alpha1,name=vclustercheckpointquota.checkpointquota.dev,admissionReviewVersions=v1,timeoutSeconds=10

// ClusterCheckpointQuotaWebhook defaults and validates ClusterCheckpointQuotas.
type ClusterCheckpointQuotaWebhook struct {
	// Quotas reads the other cluster quotas. A cluster quota is compared with cluster
	// quotas only: CheckpointQuotas can only tighten it, in their own namespaces.
	Quotas *QuotaReader
}

var (
	_ admission.Defaulter[*cqv1.ClusterCheckpointQuota] = &ClusterCheckpointQuotaWebhook{}
	_ admission.Validator[*cqv1.ClusterCheckpointQuota] = &ClusterCheckpointQuotaWebhook{}
)

// Default fills what the user left empty and rewrites nothing else.
func (w *ClusterCheckpointQuotaWebhook) Default(_ context.Context, q *cqv1.ClusterCheckpointQuota) error {
	DefaultClusterCheckpointQuota(q)
	return nil
}

// DefaultClusterCheckpointQuota fills enforcement and the orphan policy where they are empty.
func DefaultClusterCheckpointQuota(q *cqv1.ClusterCheckpointQuota) {
	DefaultRetention(&q.Spec.RetentionSpec)
}

// ValidateCreate validates a new cluster quota.
func (w *ClusterCheckpointQuotaWebhook) ValidateCreate(ctx context.Context, q *cqv1.ClusterCheckpointQuota) (admission.Warnings, error) {
	return w.validate(ctx, nil, q)
}

// ValidateUpdate validates a changed cluster quota.
func (w *ClusterCheckpointQuotaWebhook) ValidateUpdate(ctx context.Context, old, q *cqv1.ClusterCheckpointQuota) (admission.Warnings, error) {
	return w.validate(ctx, old, q)
}

// ValidateDelete allows every deletion.
func (w *ClusterCheckpointQuotaWebhook) ValidateDelete(context.Context, *cqv1.ClusterCheckpointQuota) (admission.Warnings, error) {
	return nil, nil
}

func (w *ClusterCheckpointQuotaWebhook) validate(ctx context.Context, old, q *cqv1.ClusterCheckpointQuota) (admission.Warnings, error) {
	// As for CheckpointQuota: a metadata-only update always passes.
	if old != nil && equality.Semantic.DeepEqual(old.Spec, q.Spec) {
		return nil, nil
	}
	if errs := ValidateClusterCheckpointQuota(q); len(errs) > 0 {
		return nil, invalid("ClusterCheckpointQuota", q.Name, errs)
	}
	candidate, err := policy.FromClusterQuota(q)
	if err != nil {
		return nil, invalid("ClusterCheckpointQuota", q.Name, field.ErrorList{field.InternalError(field.NewPath("spec"), err)})
	}
	clusterQuotas, err := w.Quotas.ClusterQuotas(ctx)
	if err != nil {
		return nil, unavailable("listing ClusterCheckpointQuotas", err)
	}
	others := normalise(w.Quotas.Policies, clusterQuotas, policy.FromClusterQuota)
	errs := ConflictErrors(candidate, policy.Conflicts(candidate, others), others)
	remoteErrs, remoteReports := remoteConflicts(candidate, others, nil)
	if errs = append(errs, remoteErrs...); len(errs) > 0 {
		return nil, invalid("ClusterCheckpointQuota", q.Name, errs)
	}
	warnings := SuspiciousWarnings(policy.ClusterQuotaLevels(q), &q.Spec.RetentionSpec, q.Spec.Target, field.NewPath("spec"))
	warnings = append(warnings, remoteWarnings(policy.ClusterQuotaRemoteLevels(q))...)
	warnings = append(warnings, NodeWarnings(q, clusterQuotas, field.NewPath("spec"))...)
	storeWarnings, err := w.clusterOffloadWarnings(ctx, q)
	if err != nil {
		return nil, unavailable("reading CheckpointStore "+q.Spec.Offload.Store, err)
	}
	warnings = append(warnings, storeWarnings...)
	return append(warnings, EffectiveWarnings(append(policy.Describe(candidate, others, nil), remoteReports...))...), nil
}
