package webhooks

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// failingReader answers every read with an error, as an apiserver that cannot be reached.
type failingReader struct{}

func (failingReader) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	return errors.New("connection refused")
}

func (failingReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("connection refused")
}

var _ client.Reader = failingReader{}

// failing reads quotas from a cache and an apiserver that both fail.
var failing = &QuotaReader{Cache: failingReader{}, Live: failingReader{}}

func TestValidateFailsClosed(t *testing.T) {
	q := builder.Quota("q", "shop").Total(5, "").Obj()
	_, err := (&CheckpointQuotaWebhook{Quotas: failing}).ValidateCreate(context.Background(), q)
	if !apierrors.IsServiceUnavailable(err) {
		t.Errorf("CheckpointQuota: want ServiceUnavailable, got %v", err)
	}
	c := builder.ClusterQuota("c").PerNamespace(5, "").Obj()
	_, err = (&ClusterCheckpointQuotaWebhook{Quotas: failing}).ValidateCreate(context.Background(), c)
	if !apierrors.IsServiceUnavailable(err) {
		t.Errorf("ClusterCheckpointQuota: want ServiceUnavailable, got %v", err)
	}
}

// A metadata-only update (the controller removing a finalizer) must pass even when the
// spec, admitted before a rule existed, would now be rejected.
func TestMetadataOnlyUpdatePasses(t *testing.T) {
	old := builder.Quota("q", "shop").MaxAge("7d").Obj()
	updated := old.DeepCopy()
	updated.Finalizers = nil
	old.Finalizers = []string{"checkpointquota.dev/finalizer"}
	w := &CheckpointQuotaWebhook{Quotas: failing}
	warnings, err := w.ValidateUpdate(context.Background(), old, updated)
	if err != nil || warnings != nil {
		t.Errorf("metadata-only update: want no error and no warning, got %v, %v", warnings, err)
	}
	changed := updated.DeepCopy()
	changed.Spec.Enforcement = cqv1.EnforcementDryRun
	if _, err := w.ValidateUpdate(context.Background(), old, changed); !apierrors.IsInvalid(err) {
		t.Errorf("spec update: want Invalid, got %v", err)
	}

	cold := builder.ClusterQuota("c").MaxAge("7d").Obj()
	cnew := cold.DeepCopy()
	cnew.Labels = map[string]string{"x": "y"}
	if _, err := (&ClusterCheckpointQuotaWebhook{Quotas: failing}).ValidateUpdate(context.Background(), cold, cnew); err != nil {
		t.Errorf("cluster metadata-only update: want no error, got %v", err)
	}
}

func TestRegisterRefusesNil(t *testing.T) {
	got := Register(nil, runtime.NewScheme(), failing, nil)
	if diff := cmp.Diff("webhooks need a server, a scheme and a quota reader", errString(got)); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
