package v1alpha1

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Size is an amount of storage written as a Kubernetes quantity, such as "10Gi" or "500Mi".
//
// The schema accepts any string or number here and the admission webhook explains a
// malformed value ("2GB", "500mb", a bare number) with an example of a valid one: a
// schema pattern could only answer with a regular expression.
// +kubebuilder:validation:XIntOrString
// +kubebuilder:validation:Type=""
// +kubebuilder:validation:XValidation:rule="type(self) == int || size(self) <= 64",message="a size is at most 64 characters: write a quantity such as \"10Gi\""
type Size string

// UnmarshalJSON accepts a JSON string or a JSON number, so that a bare number reaches
// admission and can be rejected with a hint instead of failing to decode.
func (s *Size) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var str string
		if err := json.Unmarshal(data, &str); err != nil {
			return err
		}
		*s = Size(str)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(data, &n); err != nil {
		return fmt.Errorf("a size must be a quantity such as \"10Gi\": %w", err)
	}
	*s = Size(n.String())
	return nil
}

// Quantity parses the size. Admission has already rejected anything that does not parse.
func (s Size) Quantity() (resource.Quantity, error) {
	return resource.ParseQuantity(string(s))
}

// Bytes returns the size in bytes, or false when it does not parse.
func (s Size) Bytes() (int64, bool) {
	q, err := s.Quantity()
	if err != nil {
		return 0, false
	}
	return q.Value(), true
}

// Duration is a length of time in Go's notation, such as "168h" or "10m".
//
// It is a string rather than metav1.Duration so that a value such as "7d" reaches the
// admission webhook, which answers with a suggestion, instead of failing to decode.
// +kubebuilder:validation:MaxLength=64
type Duration string

// Duration parses the value. Admission has already rejected anything that does not parse.
func (d Duration) Duration() (time.Duration, error) {
	return time.ParseDuration(string(d))
}

// EnforcementMode says whether a quota deletes archives or only reports what it would delete.
// +kubebuilder:validation:Enum=Enforce;DryRun
type EnforcementMode string

const (
	// EnforcementEnforce prunes archives so that every limit holds.
	EnforcementEnforce EnforcementMode = "Enforce"
	// EnforcementDryRun reports exactly what Enforce would prune and deletes nothing.
	EnforcementDryRun EnforcementMode = "DryRun"
)

// OrphanPolicyType says what happens to archives whose pod no longer exists.
// +kubebuilder:validation:Enum=Retain;Delete
type OrphanPolicyType string

const (
	// OrphanRetain keeps orphaned archives; they still count against limits.
	OrphanRetain OrphanPolicyType = "Retain"
	// OrphanDelete prunes orphaned archives once their grace period has passed.
	OrphanDelete OrphanPolicyType = "Delete"
)
