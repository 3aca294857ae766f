package webhooks

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/validation/field"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// The validators are fuzzed on any object a client could send: any JSON that decodes into
// the type. The seeds in testdata/fuzz are the samples, the documented examples and the
// malformed values the tests reject (go run ./hack/fuzzseeds writes them).

func FuzzValidateCheckpointQuota(f *testing.F) {
	f.Add([]byte(`{"spec":{"limits":{"total":{"checkpoints":15,"storage":"1000Mi"}},"maxCheckpointSize":"10Mi"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var q cqv1.CheckpointQuota
		if json.Unmarshal(data, &q) != nil {
			return
		}
		checkErrors(t, ValidateCheckpointQuota(&q))
		checkWarnings(t, SuspiciousWarnings(policy.CheckpointQuotaLevels(&q), &q.Spec.RetentionSpec, q.Spec.Target, field.NewPath("spec")))
		once := q.DeepCopy()
		DefaultCheckpointQuota(once)
		twice := once.DeepCopy()
		DefaultCheckpointQuota(twice)
		if !equality.Semantic.DeepEqual(once, twice) {
			t.Fatalf("defaulting twice differs from once:\n%+v\n%+v", once.Spec, twice.Spec)
		}
		checkErrors(t, ValidateCheckpointQuota(once))
	})
}

func FuzzValidateClusterCheckpointQuota(f *testing.F) {
	f.Add([]byte(`{"spec":{"limits":{"perNamespace":{"checkpoints":50,"storage":"1000Mi"},"perPod":{"checkpoints":30}},"orphans":{"policy":"Retain"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var q cqv1.ClusterCheckpointQuota
		if json.Unmarshal(data, &q) != nil {
			return
		}
		checkErrors(t, ValidateClusterCheckpointQuota(&q))
		checkWarnings(t, SuspiciousWarnings(policy.ClusterQuotaLevels(&q), &q.Spec.RetentionSpec, q.Spec.Target, field.NewPath("spec")))
		once := q.DeepCopy()
		DefaultClusterCheckpointQuota(once)
		twice := once.DeepCopy()
		DefaultClusterCheckpointQuota(twice)
		if !equality.Semantic.DeepEqual(once, twice) {
			t.Fatalf("defaulting twice differs from once:\n%+v\n%+v", once.Spec, twice.Spec)
		}
		checkErrors(t, ValidateClusterCheckpointQuota(once))
	})
}

// checkErrors holds every error to what kubectl shows a person: a path under spec, a type,
// and for a bad value a message, never a schema regex.
func checkErrors(t *testing.T, errs field.ErrorList) {
	t.Helper()
	for _, e := range errs {
		if !strings.HasPrefix(e.Field, "spec") || e.Type == "" {
			t.Fatalf("error without a spec path or type: %#v", e)
		}
		if e.Type == field.ErrorTypeInvalid && e.Detail == "" {
			t.Fatalf("invalid value without a message: %#v", e)
		}
		if strings.Contains(e.Detail, "^(") || strings.Contains(e.Detail, "[0-9]") {
			t.Fatalf("message shows a regex: %s", e.Detail)
		}
		_ = e.Error()
	}
}

func checkWarnings(t *testing.T, warnings []string) {
	t.Helper()
	for _, w := range warnings {
		if utf8.RuneCountInString(w) > maxWarning {
			t.Fatalf("warning of %d characters, over %d: %s", utf8.RuneCountInString(w), maxWarning, w)
		}
	}
}
