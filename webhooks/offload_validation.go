package webhooks

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// +kubebuilder:rbac:groups=checkpointquota.dev,resources=checkpointstores,verbs=get;list;watch

// Messages of offload's field errors and warnings. Tests and docs/offload.md quote them.
const (
	MsgStoreName        = `not a CheckpointStore name: use lower-case letters, digits, '-' and '.', such as "archive"; kubectl get checkpointstores lists them`
	MsgOffloadAfterPos  = `must be more than 0: write a duration such as "1h", or leave the field out to offload only what the limits prune`
	MsgStoreMissing     = "CheckpointStore %q does not exist: a cluster admin creates stores (kubectl get checkpointstores lists them)"
	MsgStoreNotGranted  = "CheckpointStore %q does not admit namespace %q: its spec.namespaceSelector %s; ask a cluster admin to grant the store to the namespace, or leave offload out"
	WarnStoreMissing    = "CheckpointStore %q does not exist yet: what the quota prunes stays on its node until it does"
	storeNoSelectorText = "is absent, so only ClusterCheckpointQuotas may use it"
)

// ValidateOffload checks offload on its own: a store name and a positive after.
func ValidateOffload(o *cqv1.OffloadSpec, path *field.Path) field.ErrorList {
	if o == nil {
		return nil
	}
	var errs field.ErrorList
	if len(validation.IsDNS1123Subdomain(o.Store)) > 0 {
		errs = append(errs, field.Invalid(path.Child("store"), o.Store, MsgStoreName))
	}
	if o.After != nil {
		after := path.Child("after")
		v, err := parseDuration(*o.After, after)
		switch {
		case err != nil:
			errs = append(errs, err)
		case v <= 0:
			errs = append(errs, field.Invalid(after, string(*o.After), MsgOffloadAfterPos))
		}
	}
	return errs
}

// Store reads a CheckpointStore from the apiserver; found is false when there is none.
// Stores are few and offload is rarely changed: one GET per admission that names one.
func (r *QuotaReader) Store(ctx context.Context, name string) (store *cqv1.CheckpointStore, found bool, err error) {
	store = &cqv1.CheckpointStore{}
	switch err := r.Live.Get(ctx, client.ObjectKey{Name: name}, store); {
	case apierrors.IsNotFound(err):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return store, true, nil
}

// validateNamespacedOffload refuses a CheckpointQuota's offload to a store that does not
// exist or does not admit its namespace: a tenant may move archives only where a cluster
// admin allowed it.
func (w *CheckpointQuotaWebhook) validateNamespacedOffload(ctx context.Context, q *cqv1.CheckpointQuota, nsLabels map[string]string) (field.ErrorList, error) {
	o := q.Spec.Offload
	if o == nil {
		return nil, nil
	}
	path := field.NewPath("spec", "offload", "store")
	store, found, err := w.Quotas.Store(ctx, o.Store)
	switch {
	case err != nil:
		return nil, err
	case !found:
		return field.ErrorList{field.Invalid(path, o.Store, fmt.Sprintf(MsgStoreMissing, o.Store))}, nil
	case !store.Admits(nsLabels):
		selector := storeNoSelectorText
		if store.Spec.NamespaceSelector != nil {
			s, _ := metav1.LabelSelectorAsSelector(store.Spec.NamespaceSelector.Meta())
			selector = fmt.Sprintf("selects %q", s)
		}
		return field.ErrorList{field.Forbidden(path, fmt.Sprintf(MsgStoreNotGranted, o.Store, q.Namespace, selector))}, nil
	}
	return nil, nil
}

// clusterOffloadWarnings warns when a cluster quota names a store that does not exist yet.
func (w *ClusterCheckpointQuotaWebhook) clusterOffloadWarnings(ctx context.Context, q *cqv1.ClusterCheckpointQuota) ([]string, error) {
	o := q.Spec.Offload
	if o == nil {
		return nil, nil
	}
	if _, found, err := w.Quotas.Store(ctx, o.Store); err != nil || found {
		return nil, err
	}
	return []string{"spec.offload.store: " + fmt.Sprintf(WarnStoreMissing, o.Store)}, nil
}
