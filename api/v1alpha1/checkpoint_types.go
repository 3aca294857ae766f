package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Labels, finalizer and annotations the node agent puts on Checkpoint objects.
const (
	// LabelNode names the node that holds the archive.
	LabelNode = "checkpointquota.dev/node"
	// LabelPod names the checkpointed pod.
	LabelPod = "checkpointquota.dev/pod"
	// LabelContainer names the checkpointed container.
	LabelContainer = "checkpointquota.dev/container"

	// LabelOrphanOf is set on the Checkpoint of an archive whose namespace is gone: the
	// object then lives in the agent's namespace, and the label names the namespace the
	// archive was taken in, so that `kubectl get checkpoints -A -l checkpointquota.dev/orphan-of=shop`
	// finds them.
	LabelOrphanOf = "checkpointquota.dev/orphan-of"

	// LegacyFinalizerArchive is the finalizer that versions before the node-local record put
	// on every Checkpoint. Nothing sets it any more: agents remove it where they find it,
	// and the manager when it releases the Checkpoints of a gone node.
	LegacyFinalizerArchive = "checkpointquota.dev/archive"
)

// CheckpointSpec holds the one field a user sets on a Checkpoint.
type CheckpointSpec struct {
	// Pinned keeps the archive: pruning never deletes it, and it still counts against limits.
	// A .keep marker beside the archive on the node pins it too.
	// +optional
	Pinned bool `json:"pinned,omitempty"`
}

// CheckpointStatus is what the node agent read from the archive.
type CheckpointStatus struct {
	// NodeName is the node whose disk holds the archive.
	NodeName string `json:"nodeName"`
	// Directory is the checkpoint directory on the node.
	Directory string `json:"directory"`
	// FileName is the archive's file name inside Directory.
	FileName string `json:"fileName"`

	// PodName is the checkpointed pod.
	// +optional
	PodName string `json:"podName,omitempty"`
	// PodUID is the UID of the checkpointed pod; an archive whose pod UID no longer exists is an orphan.
	// +optional
	PodUID types.UID `json:"podUID,omitempty"`
	// ContainerName is the checkpointed container.
	// +optional
	ContainerName string `json:"containerName,omitempty"`
	// OrphanOf is the namespace the archive was taken in, set when that namespace is gone
	// and the Checkpoint lives in the node agent's namespace instead.
	// +optional
	OrphanOf string `json:"orphanOf,omitempty"`

	// SizeBytes is the archive's exact size.
	// +optional
	SizeBytes int64 `json:"sizeBytes,omitempty"`
	// Size is SizeBytes for people, such as "1.2Gi".
	// +optional
	Size string `json:"size,omitempty"`

	// CheckpointTime is when the checkpoint was taken: from inside the archive, else the
	// file name, else the file's modification time.
	// +optional
	CheckpointTime *metav1.Time `json:"checkpointTime,omitempty"`
	// ModTime is the archive file's modification time.
	// +optional
	ModTime *metav1.Time `json:"modTime,omitempty"`

	// Runtime is the container runtime that wrote the archive (cri-o, containerd, ...).
	// +optional
	Runtime string `json:"runtime,omitempty"`
	// Image is the container's image.
	// +optional
	Image string `json:"image,omitempty"`

	// Pinned is true when spec.pinned is set or a .keep marker sits beside the archive.
	// +optional
	Pinned bool `json:"pinned,omitempty"`
	// KeepMarker is true when a .keep marker sits beside the archive on the node.
	// +optional
	KeepMarker bool `json:"keepMarker,omitempty"`

	// Conditions: Ready, and Unreadable when the archive's identity could not be read.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Condition types of a Checkpoint.
const (
	// CheckpointConditionUnreadable is true when the archive could not be read; it is
	// never deleted automatically.
	CheckpointConditionUnreadable = "Unreadable"
)

// Checkpoint stands for one container checkpoint archive on one node. The node agent
// creates it; a person deleting it, or the manager's pruning, deletes the archive, while
// the namespace's deletion or uninstalling never does (docs/node-agent.md, "Deletion").
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ckpt,categories=checkpoint-quota
// +kubebuilder:printcolumn:name="Pod",type=string,JSONPath=`.status.podName`
// +kubebuilder:printcolumn:name="Container",type=string,JSONPath=`.status.containerName`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.nodeName`
// +kubebuilder:printcolumn:name="Size",type=string,JSONPath=`.status.size`
// +kubebuilder:printcolumn:name="Pinned",type=boolean,JSONPath=`.status.pinned`
// +kubebuilder:printcolumn:name="Orphan-Of",type=string,JSONPath=`.status.orphanOf`,description="The namespace the archive was taken in, when that namespace is gone"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.status.checkpointTime`,description="Time since the checkpoint was taken"
type Checkpoint struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   CheckpointSpec   `json:"spec,omitempty"`
	Status CheckpointStatus `json:"status,omitempty"`
}

// IsPinned reports whether pruning must keep the archive.
func (c *Checkpoint) IsPinned() bool {
	return c.Spec.Pinned || c.Status.Pinned || c.Status.KeepMarker
}

// CheckpointList is a list of Checkpoint.
// +kubebuilder:object:root=true
type CheckpointList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Checkpoint `json:"items"`
}

func init() {
	register(&Checkpoint{}, &CheckpointList{})
}
