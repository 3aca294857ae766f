package webhooks

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// Paths of the webhooks, as the markers and config/webhook/manifests.yaml name them.
const (
	MutateQuotaPath          = "/mutate-checkpointquota-dev-v1alpha1-checkpointquota"
	ValidateQuotaPath        = "/validate-checkpointquota-dev-v1alpha1-checkpointquota"
	MutateClusterQuotaPath   = "/mutate-checkpointquota-dev-v1alpha1-clustercheckpointquota"
	ValidateClusterQuotaPath = "/validate-checkpointquota-dev-v1alpha1-clustercheckpointquota"
	ValidateCheckpointPath   = "/validate-checkpointquota-dev-v1alpha1-checkpoint"
)

// +kubebuilder:rbac:groups=checkpointquota.dev,resources=checkpointquotas;clustercheckpointquotas,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// SetupWithManager registers both kinds' webhooks on the manager's webhook server. They
// read other quotas from the manager's cache, checked against a metadata-only list of the
// scope so that a quota created a moment ago is seen by the next admission (QuotaReader).
// The informers they read are asked for here, so that the cache starts and syncs them
// with the manager rather than on the first admission.
//
// o.Policies holds the quotas' parsed policies, shared with the pruning pass (nil: the
// webhooks' own); a deleted quota's goes when the cache sees the deletion.
func SetupWithManager(mgr ctrl.Manager, o Options) error {
	if mgr == nil {
		return fmt.Errorf("webhooks need a manager")
	}
	policies := o.Policies
	if policies == nil {
		policies = policy.NewParsed()
	}
	if err := mgr.Add(warmInformers{cache: mgr.GetCache(), policies: policies}); err != nil {
		return err
	}
	var ledger *PinLedger
	if o.PinLedger != nil {
		// Direct: the ledger is read and written around the cache.
		direct, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
		if err != nil {
			return fmt.Errorf("a client for the pin ledger: %w", err)
		}
		ledger = &PinLedger{Client: direct, Key: *o.PinLedger}
	}
	return Register(mgr.GetWebhookServer(), mgr.GetScheme(), &QuotaReader{Cache: mgr.GetClient(), Live: mgr.GetAPIReader(), Policies: policies}, ledger)
}

// Options configure the webhooks.
type Options struct {
	// Policies holds the quotas' parsed policies, shared with the pruning pass; nil: the
	// webhooks' own.
	Policies *policy.Parsed
	// PinLedger names the Lease on which the replicas serving admission record the pins
	// they admit (PinLedger); nil when one process serves admission.
	PinLedger *types.NamespacedName
}

// warmInformers asks the cache for the informers that admission reads as soon as the
// manager starts, on every replica (not only the leader), so that they sync with the
// manager rather than on the first admission.
type warmInformers struct {
	cache    cache.Cache
	policies *policy.Parsed
}

// NeedLeaderElection is false: every replica serves admissions.
func (warmInformers) NeedLeaderElection() bool { return false }

// Start asks for each informer. One that fails now is asked for again by the first
// admission that reads it, so a failure here is only logged.
func (w warmInformers) Start(ctx context.Context) error {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	for _, obj := range []client.Object{&cqv1.CheckpointQuota{}, &cqv1.ClusterCheckpointQuota{}, ns} {
		inf, err := w.cache.GetInformer(ctx, obj)
		if err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Starting an informer for admission", "kind", fmt.Sprintf("%T", obj))
			continue
		}
		if obj == ns {
			continue
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{DeleteFunc: w.forget}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Watching the deletions of quotas", "kind", fmt.Sprintf("%T", obj))
		}
	}
	return nil
}

// forget drops the policy of a deleted quota.
func (w warmInformers) forget(obj any) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if o, ok := obj.(client.Object); ok {
		w.policies.Forget(o.GetUID())
	}
}

// Register adds both kinds' webhooks to a webhook server.
// pins, when not nil, records the pins admitted by every replica.
func Register(srv webhook.Server, scheme *runtime.Scheme, quotas *QuotaReader, pins *PinLedger) error {
	if srv == nil || scheme == nil || quotas == nil || quotas.Cache == nil || quotas.Live == nil {
		return fmt.Errorf("webhooks need a server, a scheme and a quota reader")
	}
	q := &CheckpointQuotaWebhook{Quotas: quotas}
	srv.Register(MutateQuotaPath, lenient(scheme, func() runtime.Object { return &cqv1.CheckpointQuota{} },
		admission.WithDefaulter[*cqv1.CheckpointQuota](scheme, q)))
	srv.Register(ValidateQuotaPath, admission.WithValidator[*cqv1.CheckpointQuota](scheme, q))
	c := &ClusterCheckpointQuotaWebhook{Quotas: quotas}
	srv.Register(MutateClusterQuotaPath, lenient(scheme, func() runtime.Object { return &cqv1.ClusterCheckpointQuota{} },
		admission.WithDefaulter[*cqv1.ClusterCheckpointQuota](scheme, c)))
	srv.Register(ValidateClusterQuotaPath, admission.WithValidator[*cqv1.ClusterCheckpointQuota](scheme, c))
	srv.Register(ValidateCheckpointPath, admission.WithValidator[*cqv1.Checkpoint](scheme, &CheckpointWebhook{Quotas: quotas, Ledger: pins}))
	return nil
}

// lenient lets an object that does not decode into the Go type pass the mutating webhook
// unchanged. Mutating webhooks run before the apiserver checks the schema, so a count of
// 1.5 would otherwise fail here with a JSON decoding error; passed on, it gets the
// schema's own answer ("must be of type integer"), and the validating webhook, which runs
// after the schema check, still sees every object that reaches it.
func lenient(scheme *runtime.Scheme, newObj func() runtime.Object, wh *admission.Webhook) *admission.Webhook {
	inner := wh.Handler
	decoder := admission.NewDecoder(scheme)
	wh.Handler = admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		if len(req.Object.Raw) > 0 {
			if err := decoder.DecodeRaw(req.Object, newObj()); err != nil {
				return admission.Allowed("not defaulted: the object does not decode, and the schema check says why")
			}
		}
		return inner.Handle(ctx, req)
	})
	return wh
}

// invalid wraps field errors into the 422 answer kubectl prints as one bullet per field.
func invalid(kind, name string, errs field.ErrorList) error {
	return apierrors.NewInvalid(cqv1.GroupVersion.WithKind(kind).GroupKind(), name, errs)
}

// unavailable is the answer when other quotas cannot be read: admission fails closed.
func unavailable(what string, err error) error {
	return apierrors.NewServiceUnavailable(fmt.Sprintf("cannot check the quota against other quotas: %s: %v; try again", what, err))
}

// normalise turns quotas into policy quotas, skipping any that does not parse (one
// admitted before the webhook existed): it cannot be compared, and must not block others.
// Each quota is parsed once per generation (policy.Parsed), not on every admission.
func normalise[T any, P quotaObject[T]](parsed *policy.Parsed, items []T, from func(P) (*policy.Quota, error)) []*policy.Quota {
	out := make([]*policy.Quota, 0, len(items))
	for i := range items {
		obj := P(&items[i])
		if q, err := parsed.Quota(obj, func() (*policy.Quota, error) { return from(obj) }); err == nil {
			out = append(out, q)
		}
	}
	return out
}
