package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClusterQuotaLimits are the limits of a cluster quota.
type ClusterQuotaLimits struct {
	// Total caps all selected namespaces together.
	// +optional
	Total *ResourceLimits `json:"total,omitempty"`
	// PerNamespace caps each selected namespace.
	// +optional
	PerNamespace *ResourceLimits `json:"perNamespace,omitempty"`
	// PerPod caps each targeted pod.
	// +optional
	PerPod *ResourceLimits `json:"perPod,omitempty"`
	// PerContainer caps each targeted container of each pod.
	// +optional
	PerContainer *ResourceLimits `json:"perContainer,omitempty"`
	// PerNode caps the archives on each node, whatever their namespace: the namespace
	// selector and the target do not narrow it. With several cluster quotas, the smallest wins.
	// +optional
	PerNode *ResourceLimits `json:"perNode,omitempty"`
}

// ClusterCheckpointQuotaSpec is the cluster default policy for checkpoint archives.
type ClusterCheckpointQuotaSpec struct {
	// NamespaceSelector selects the namespaces the quota covers; absent, it covers all.
	// +optional
	NamespaceSelector *LabelSelector `json:"namespaceSelector,omitempty"`

	// Target narrows the quota to some pods and containers of the selected namespaces.
	// +optional
	Target *QuotaTarget `json:"target,omitempty"`

	// Limits caps count and storage per level. A limit left out is unlimited.
	// +optional
	Limits ClusterQuotaLimits `json:"limits,omitempty"`

	// NodeFilesystem keeps a free-space floor on each node's checkpoint filesystem.
	// +optional
	NodeFilesystem *NodeFilesystemSpec `json:"nodeFilesystem,omitempty"`

	RetentionSpec `json:",inline"`

	// RemoteLimits bound the archives that offload moved to CheckpointStores; they are
	// ceilings for the remoteLimits of CheckpointQuotas.
	// +optional
	RemoteLimits *ClusterRemoteLimits `json:"remoteLimits,omitempty"`
}

// ClusterCheckpointQuota is the cluster-wide default policy for checkpoint archives;
// a CheckpointQuota in a namespace overrides the limits it sets.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ccpq,categories=checkpoint-quota
// +kubebuilder:printcolumn:name="Checkpoints",type=string,JSONPath=`.status.summary.checkpoints`,description="Archives used/hard"
// +kubebuilder:printcolumn:name="Storage",type=string,JSONPath=`.status.summary.storage`,description="Bytes used/hard"
// +kubebuilder:printcolumn:name="Stored",type=string,JSONPath=`.status.summary.remote`,description="Archives and bytes in CheckpointStores, used/hard (remoteLimits)"
// +kubebuilder:printcolumn:name="Enforcement",type=string,JSONPath=`.spec.enforcement`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`,description="Whether usage is computed; False when the spec does not parse (kubectl describe says why)"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterCheckpointQuota struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ClusterCheckpointQuotaSpec `json:"spec,omitempty"`
	Status QuotaStatus                `json:"status,omitempty"`
}

// ClusterCheckpointQuotaList is a list of ClusterCheckpointQuota.
// +kubebuilder:object:root=true
type ClusterCheckpointQuotaList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterCheckpointQuota `json:"items"`
}

func init() {
	register(&ClusterCheckpointQuota{}, &ClusterCheckpointQuotaList{})
}
