package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CheckpointNodeStatus is what one node's agent found in its checkpoint directories.
type CheckpointNodeStatus struct {
	// Archives is the number of archive files on the node: published, unreadable and
	// still settling ones alike.
	Archives int64 `json:"archives"`
	// Bytes is the size of those archives together.
	Bytes int64 `json:"bytes"`
	// Size is Bytes for people, such as "1.2Gi".
	// +optional
	Size string `json:"size,omitempty"`
	// Unreadable is the number of archives that could not be read; they are kept and count
	// against the node.
	// +optional
	Unreadable int64 `json:"unreadable,omitempty"`
	// Pinned is the number of archives that pruning keeps (spec.pinned or a .keep marker).
	// +optional
	Pinned int64 `json:"pinned,omitempty"`
	// Unattributed counts the archives that no Checkpoint stands for (unreadable archives
	// that name no namespace): they use the node's disk, but no quota can prune them.
	// +optional
	Unattributed NodeArchives `json:"unattributed,omitempty"`
	// Free is the free space of the fullest checkpoint filesystem, for people, such as "12Gi".
	// +optional
	Free string `json:"free,omitempty"`
	// FreePercent is the same free space as a share of its filesystem, such as "42%".
	// +optional
	FreePercent string `json:"freePercent,omitempty"`
	// Filesystems lists the filesystems of the checkpoint directories, one entry per
	// filesystem however many directories it holds.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Filesystems []CheckpointFilesystem `json:"filesystems,omitempty"`
	// Stores is what this node's agent found when it checked each CheckpointStore.
	// +optional
	// +listType=map
	// +listMapKey=store
	// +kubebuilder:validation:MaxItems=64
	Stores []NodeStoreCheck `json:"stores,omitempty"`
}

// NodeStoreCheck is one node's check of one CheckpointStore.
type NodeStoreCheck struct {
	// Store names the CheckpointStore.
	// +kubebuilder:validation:MaxLength=253
	Store string `json:"store"`
	// Reachable: the endpoint answered, accepted the credentials and has the bucket.
	Reachable bool `json:"reachable"`
	// Writable: an object could be written and deleted under the store's prefix.
	Writable bool `json:"writable"`
	// Message says what failed, when something did.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
	// CheckTime is when the agent checked.
	CheckTime metav1.Time `json:"checkTime"`
}

// NodeArchives is a count of archives and their bytes.
type NodeArchives struct {
	// Archives is the number of archives.
	// +optional
	Archives int64 `json:"archives,omitempty"`
	// Bytes is their size together.
	// +optional
	Bytes int64 `json:"bytes,omitempty"`
}

// CheckpointFilesystem is the filesystem of one or more checkpoint directories, as statfs
// reports it.
type CheckpointFilesystem struct {
	// Directories are the configured checkpoint directories on this filesystem.
	// +listType=atomic
	Directories []string `json:"directories"`
	// CapacityBytes is the filesystem's size.
	CapacityBytes int64 `json:"capacityBytes"`
	// FreeBytes is the space that unprivileged writers such as the kubelet may still use.
	FreeBytes int64 `json:"freeBytes"`
	// ArchiveBytes is the size of the archives in these directories when FreeBytes was measured.
	ArchiveBytes int64 `json:"archiveBytes"`
	// UnattributedBytes is the part of ArchiveBytes that no Checkpoint stands for.
	// +optional
	UnattributedBytes int64 `json:"unattributedBytes,omitempty"`
}

// CheckpointNode is one node's view of its checkpoint archives and of the filesystem that
// holds them. The node's agent writes it; it goes with the Node (an owner reference).
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=ckptnode,categories=checkpoint-quota
// +kubebuilder:printcolumn:name="Archives",type=integer,JSONPath=`.status.archives`
// +kubebuilder:printcolumn:name="Size",type=string,JSONPath=`.status.size`
// +kubebuilder:printcolumn:name="Unreadable",type=integer,JSONPath=`.status.unreadable`,priority=1
// +kubebuilder:printcolumn:name="Pinned",type=integer,JSONPath=`.status.pinned`,priority=1
// +kubebuilder:printcolumn:name="FS-Free",type=string,JSONPath=`.status.free`,description="Free space of the fullest checkpoint filesystem"
// +kubebuilder:printcolumn:name="FS-Free%",type=string,JSONPath=`.status.freePercent`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CheckpointNode struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Status has no subresource: the agent is the only writer, and one write per change
	// is what it costs.
	Status CheckpointNodeStatus `json:"status,omitempty"`
}

// CheckpointNodeList is a list of CheckpointNode.
// +kubebuilder:object:root=true
type CheckpointNodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CheckpointNode `json:"items"`
}

func init() {
	register(&CheckpointNode{}, &CheckpointNodeList{})
}
