package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Keys of the credentials Secret that a CheckpointStore names, as the AWS tools name them.
const (
	StoreSecretAccessKeyID     = "accessKeyID"
	StoreSecretSecretAccessKey = "secretAccessKey"
)

// CheckpointStoreSpec is where offloaded archives go: one bucket of an S3-compatible
// object store, and who may send archives there.
type CheckpointStoreSpec struct {
	// Endpoint is the URL of the S3 API, such as "https://s3.eu-west-1.amazonaws.com" or
	// "http://seaweedfs.storage:8333". The bucket is addressed by path.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (self.startsWith('https://') || self.startsWith('http://')) && url(self).getHostname() != ''",message="must be an http:// or https:// URL with a host, such as \"https://s3.eu-west-1.amazonaws.com\""
	// +kubebuilder:validation:XValidation:rule="url(self).getEscapedPath() == '' || url(self).getEscapedPath() == '/'",message="must name the server only, such as \"https://s3.example.com\": the bucket goes in spec.bucket and a key prefix in spec.prefix"
	Endpoint string `json:"endpoint"`

	// Bucket is the bucket's name; it must exist (the agents check that they can write to it).
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9][a-z0-9.-]*[a-z0-9]$`
	Bucket string `json:"bucket"`

	// Prefix is put before every key the store holds, such as "clusters/prod". The rest
	// of each key is "<namespace>/<pod>/<container>/<checkpoint UID>.tar", set by the node
	// agent: nobody else names keys (docs/offload.md, "Keys").
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$`
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(p, p == '.' || p == '..')",message="must not hold \".\" or \"..\" as a part: write a path such as \"clusters/prod\""
	Prefix string `json:"prefix,omitempty"`

	// Region is the bucket's region, for the request signature; default "us-east-1".
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[a-z0-9-]+$`
	Region string `json:"region,omitempty"`

	// CABundle holds the PEM certificates that the endpoint's certificate must chain to,
	// where it is not signed by a CA that the agent's image trusts.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	CABundle string `json:"caBundle,omitempty"`

	// CredentialsSecret names a Secret in the node agent's namespace with the keys
	// accessKeyID and secretAccessKey. The agents read it; nobody else needs to.
	CredentialsSecret SecretName `json:"credentialsSecret"`

	// Encryption asks the store to encrypt each object at rest.
	// +optional
	Encryption *StoreEncryption `json:"encryption,omitempty"`

	// NamespaceSelector selects the namespaces whose CheckpointQuotas may offload to this
	// store. Absent, none may: only ClusterCheckpointQuotas can name the store.
	// +optional
	NamespaceSelector *LabelSelector `json:"namespaceSelector,omitempty"`
}

// SecretName names a Secret in the node agent's namespace.
type SecretName struct {
	// Name is the Secret's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// EncryptionType is a kind of server-side encryption.
// +kubebuilder:validation:Enum=SSE-S3;SSE-KMS
type EncryptionType string

const (
	// EncryptionS3 encrypts with keys the store manages.
	EncryptionS3 EncryptionType = "SSE-S3"
	// EncryptionKMS encrypts with a key of the store's key management service.
	EncryptionKMS EncryptionType = "SSE-KMS"
)

// StoreEncryption is server-side encryption of the stored objects.
// +kubebuilder:validation:XValidation:rule="self.type == 'SSE-KMS' ? has(self.kmsKeyID) : !has(self.kmsKeyID)",message="kmsKeyID is required with SSE-KMS and not allowed with SSE-S3"
type StoreEncryption struct {
	// Type is SSE-S3 or SSE-KMS.
	Type EncryptionType `json:"type"`
	// KMSKeyID is the key SSE-KMS encrypts with.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	KMSKeyID string `json:"kmsKeyID,omitempty"`
}

// CheckpointStoreStatus says whether the nodes can reach and write the store, and what it holds.
type CheckpointStoreStatus struct {
	// Objects is the number of archives stored, as their Checkpoints say.
	// +optional
	Objects int64 `json:"objects,omitempty"`
	// Bytes is their size together.
	// +optional
	Bytes int64 `json:"bytes,omitempty"`
	// Size is Bytes for people, such as "1.2Gi".
	// +optional
	Size string `json:"size,omitempty"`

	// Conditions: Reachable and Writable, each True when every node that checked the
	// store could; the message names the nodes that could not (each node's own answer is
	// in its CheckpointNode, status.stores).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Condition types of a CheckpointStore, and of each node's check in CheckpointNode.status.stores.
const (
	// StoreConditionReachable: the endpoint answers, the credentials are accepted and the bucket exists.
	StoreConditionReachable = "Reachable"
	// StoreConditionWritable: an object could be written and deleted under the prefix.
	StoreConditionWritable = "Writable"
)

// CheckpointStore is an S3-compatible bucket that quotas with offload move archives to,
// instead of deleting them. Only cluster admins write stores; a store's namespaceSelector
// says which namespaces' own quotas may use it (docs/offload.md, docs/security.md).
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ckptstore,categories=checkpoint-quota
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.spec.endpoint`
// +kubebuilder:printcolumn:name="Bucket",type=string,JSONPath=`.spec.bucket`
// +kubebuilder:printcolumn:name="Reachable",type=string,JSONPath=`.status.conditions[?(@.type=="Reachable")].status`
// +kubebuilder:printcolumn:name="Writable",type=string,JSONPath=`.status.conditions[?(@.type=="Writable")].status`
// +kubebuilder:printcolumn:name="Objects",type=integer,JSONPath=`.status.objects`
// +kubebuilder:printcolumn:name="Size",type=string,JSONPath=`.status.size`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CheckpointStore struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   CheckpointStoreSpec   `json:"spec,omitempty"`
	Status CheckpointStoreStatus `json:"status,omitempty"`
}

// CheckpointStoreList is a list of CheckpointStore.
// +kubebuilder:object:root=true
type CheckpointStoreList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CheckpointStore `json:"items"`
}

func init() {
	register(&CheckpointStore{}, &CheckpointStoreList{})
}

// Admits says whether a CheckpointQuota in a namespace with these labels may offload to
// the store: only where its namespaceSelector selects the namespace. Admission asks it
// when the quota is written, the manager at each pass (labels and stores change).
func (s *CheckpointStore) Admits(namespaceLabels map[string]string) bool {
	if s.Spec.NamespaceSelector == nil {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(s.Spec.NamespaceSelector.Meta())
	return err == nil && sel.Matches(labels.Set(namespaceLabels))
}

// OffloadSpec moves what a quota would prune from a node to a CheckpointStore instead.
type OffloadSpec struct {
	// Store names the CheckpointStore. A CheckpointQuota may name only a store whose
	// namespaceSelector selects its namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Store string `json:"store"`

	// After also moves archives older than this while they are within the limits, in Go's
	// duration notation such as "1h".
	// +optional
	After *Duration `json:"after,omitempty"`
}

// OffloadRequest is the manager's decision to move an archive to a store rather than
// delete it: the node agent uploads it, verifies it, and only then removes the file.
type OffloadRequest struct {
	// Store names the CheckpointStore.
	// +kubebuilder:validation:MaxLength=253
	Store string `json:"store"`
	// Reason is the rule that moves it, such as "perContainer.checkpoints 13/10".
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Reason string `json:"reason,omitempty"`
}

// ArchiveLocation is where an offloaded archive is stored, written by the node agent once
// the stored object's size and SHA-256 were verified.
type ArchiveLocation struct {
	// Store names the CheckpointStore.
	// +kubebuilder:validation:MaxLength=253
	Store string `json:"store"`
	// Bucket is the store's bucket when the object was written.
	// +kubebuilder:validation:MaxLength=63
	Bucket string `json:"bucket"`
	// Key is the object's key in the bucket.
	// +kubebuilder:validation:MaxLength=1024
	Key string `json:"key"`
	// SHA256 is the archive's SHA-256, hex; the object carries it in its metadata too.
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{64}$`
	SHA256 string `json:"sha256"`
	// StoredTime is when the upload was verified.
	StoredTime metav1.Time `json:"storedTime"`
}
