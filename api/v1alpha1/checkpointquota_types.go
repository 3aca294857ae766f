package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// QuotaLimits are the limits of a namespaced quota.
type QuotaLimits struct {
	// Total caps everything the quota targets, together.
	// +optional
	Total *ResourceLimits `json:"total,omitempty"`
	// PerPod caps each targeted pod.
	// +optional
	PerPod *ResourceLimits `json:"perPod,omitempty"`
	// PerContainer caps each targeted container of each pod.
	// +optional
	PerContainer *ResourceLimits `json:"perContainer,omitempty"`
}

// CheckpointQuotaSpec is the policy for checkpoint archives in one namespace.
type CheckpointQuotaSpec struct {
	// Target narrows the quota to some pods and containers; absent, it covers every
	// archive in the namespace.
	// +optional
	Target *QuotaTarget `json:"target,omitempty"`

	// Limits caps count and storage per level. A limit left out is unlimited.
	// +optional
	Limits QuotaLimits `json:"limits,omitempty"`

	RetentionSpec `json:",inline"`

	// RemoteLimits bound the archives that offload moved to CheckpointStores.
	// +optional
	RemoteLimits *RemoteLimits `json:"remoteLimits,omitempty"`
}

// CheckpointQuota limits the container checkpoint archives of a namespace, as
// ResourceQuota limits its pods.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cpq,categories=checkpoint-quota
// +kubebuilder:printcolumn:name="Checkpoints",type=string,JSONPath=`.status.summary.checkpoints`,description="Archives used/hard"
// +kubebuilder:printcolumn:name="Storage",type=string,JSONPath=`.status.summary.storage`,description="Bytes used/hard"
// +kubebuilder:printcolumn:name="Stored",type=string,JSONPath=`.status.summary.remote`,description="Archives and bytes in CheckpointStores, used/hard (remoteLimits)"
// +kubebuilder:printcolumn:name="Enforcement",type=string,JSONPath=`.spec.enforcement`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`,description="Whether usage is computed; False when the spec does not parse (kubectl describe says why)"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CheckpointQuota struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   CheckpointQuotaSpec `json:"spec,omitempty"`
	Status QuotaStatus         `json:"status,omitempty"`
}

// CheckpointQuotaList is a list of CheckpointQuota.
// +kubebuilder:object:root=true
type CheckpointQuotaList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CheckpointQuota `json:"items"`
}

func init() {
	register(&CheckpointQuota{}, &CheckpointQuotaList{})
}
