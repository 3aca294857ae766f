package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Labels, finalizer, annotations and selectable fields of Checkpoint objects.
const (
	// FieldArchiveNode is the selectable field that names the node that holds the archive:
	// `kubectl get checkpoints -A --field-selector spec.archive.nodeName=<node>`. The
	// agent's cache holds only the Checkpoints of its own node, selected by it.
	FieldArchiveNode = "spec.archive.nodeName"

	// LegacyLabelNode named the node on every Checkpoint that earlier agents published (a
	// long node name shortened with a hash). Agents no longer set it, nor remove it where
	// it is: they find the Checkpoints of agents before spec.archive by it, to adopt them.
	// Select by FieldArchiveNode instead.
	LegacyLabelNode = "checkpointquota.dev/node"

	// LabelOrphanOf is set on the Checkpoint of an archive whose namespace is gone: the
	// object then lives in the agent's namespace, and the label names the namespace the
	// archive was taken in, so that `kubectl get checkpoints -A -l checkpointquota.dev/orphan-of=shop`
	// finds them.
	LabelOrphanOf = "checkpointquota.dev/orphan-of"

	// LegacyFinalizerArchive is the finalizer that versions before the node-local record put
	// on every Checkpoint. Nothing sets it any more: agents remove it where they find it,
	// and the manager when it releases the Checkpoints of a gone node.
	LegacyFinalizerArchive = "checkpointquota.dev/archive"

	// LegacyAnnotationFile held the archive's path on Checkpoints that older agents wrote,
	// before spec.archive did. Agents still read it, to adopt those objects, and remove it.
	LegacyAnnotationFile = "checkpointquota.dev/file"

	// AnnotationFetch asks the node agent of an offloaded Checkpoint to bring its archive
	// back into the node's checkpoint directory (`kubectl checkpoint-quota fetch --node`):
	// the agent downloads it, verifies its SHA-256, puts it under its own file name, says
	// so in the Fetched condition, and removes the annotation. Its value is for people
	// (who asked, when). It names nothing: the node, directory, file name and stored object
	// are the Checkpoint's own (spec.archive, status.location), which a tenant cannot write.
	AnnotationFetch = "checkpointquota.dev/fetch"

	// LabelFetchTo asks the agent of the node it names to bring a copy of an offloaded
	// Checkpoint's archive into that node's checkpoint directory (`kubectl checkpoint-quota
	// fetch --node N` for another node than the archive's). Each agent watches the
	// Checkpoints that carry its node (FetchToValue), so the apiserver filters; the copy is
	// a new archive of that node, published with spec.archive.copyOf, and the agent removes
	// the label once it is there. The label names only a node: the directory, file name and
	// stored object are the agent's own and the Checkpoint's (docs/offload.md).
	LabelFetchTo = "checkpointquota.dev/fetch-to"

	// AnnotationFetchURL asks the node agent of an offloaded Checkpoint for a short-lived
	// download URL of its stored object (`kubectl checkpoint-quota fetch -o FILE` by someone
	// who cannot read the store's credentials). Its value is an X25519 public key, base64
	// (standard, padded: 44 characters), made for this one request: the agent writes the
	// URL into status.downloadURL sealed to that key (NaCl's anonymous box), so only the
	// holder of its private key can read it. It names no object, bucket or store: those
	// are the Checkpoint's own (status.location), which a tenant cannot write.
	AnnotationFetchURL = "checkpointquota.dev/fetch-url"
)

// CheckpointSpec holds the archive a Checkpoint stands for, which the node agent sets when
// it creates the object and nobody can change afterwards, and spec.pinned, the one field
// a person sets.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.archive) || has(self.archive)",message="spec.archive is written by the node agent and cannot be removed; only spec.pinned can change"
type CheckpointSpec struct {
	// Pinned keeps the archive: pruning never deletes it, and it still counts against limits.
	// A .keep marker beside the archive on the node pins it too.
	// +optional
	Pinned bool `json:"pinned,omitempty"`

	// Archive is where the archive is and whose it is, as the node agent read it. Objects
	// that agents before v0.3 published have none until their agent adopts them.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.archive is written by the node agent from the archive on the node and cannot change; only spec.pinned can"
	Archive *ArchiveSource `json:"archive,omitempty"`
}

// ArchiveSource is one archive file on one node and the container it was taken from.
// The agent publishes an identity only when the runtime's own metadata and the kubelet's
// file name agree on it (docs/node-agent.md, "Identity"). It is written whole, once, so
// it is atomic: the object's managedFields record one field for it, not one per member.
// +structType=atomic
type ArchiveSource struct {
	// NodeName is the node whose disk holds the archive.
	// +kubebuilder:validation:MaxLength=253
	NodeName string `json:"nodeName"`
	// Directory is the checkpoint directory on the node.
	// +kubebuilder:validation:MaxLength=4096
	Directory string `json:"directory"`
	// FileName is the archive's file name inside Directory.
	// +kubebuilder:validation:MaxLength=1024
	FileName string `json:"fileName"`

	// PodName is the checkpointed pod.
	// +kubebuilder:validation:MaxLength=253
	PodName string `json:"podName"`
	// PodUID is the UID of the checkpointed pod; an archive whose pod UID no longer exists is an orphan.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=128
	PodUID types.UID `json:"podUID,omitempty"`
	// ContainerName is the checkpointed container.
	// +kubebuilder:validation:MaxLength=253
	ContainerName string `json:"containerName"`
	// OrphanOf is the namespace the archive was taken in, set when that namespace was gone
	// when the agent published it, and the Checkpoint lives in the agent's namespace instead.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	OrphanOf string `json:"orphanOf,omitempty"`

	// CopyOf is set when the archive is a copy that the agent of this node fetched from a
	// CheckpointStore (LabelFetchTo): the stored Checkpoint it is a copy of. Written once
	// with the rest of spec.archive, so a copy is one from its first moment and nobody can
	// make an archive one, or a copy not one. A copy counts on its node like any archive,
	// every rule frees it first, and it is never moved to a store: its bytes are there.
	// +optional
	CopyOf *ArchiveCopy `json:"copyOf,omitempty"`

	// SizeBytes is the archive's exact size.
	// +kubebuilder:validation:Minimum=0
	SizeBytes int64 `json:"sizeBytes"`
	// Size is SizeBytes for people, such as "1.2Gi", for kubectl get.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	Size string `json:"size,omitempty"`

	// CheckpointTime is when the checkpoint was taken: from inside the archive, else the
	// file name, else the file's modification time.
	CheckpointTime metav1.Time `json:"checkpointTime"`

	// Runtime is the container runtime that wrote the archive (cri-o, containerd).
	// +optional
	// +kubebuilder:validation:MaxLength=32
	Runtime string `json:"runtime,omitempty"`
	// Image is the image the container was started from.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Image string `json:"image,omitempty"`
}

// ArchiveCopy names the offloaded Checkpoint whose stored archive a copy was fetched from.
type ArchiveCopy struct {
	// Namespace and Name are the stored Checkpoint's.
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// UID is the stored Checkpoint's UID, which the stored object's metadata carries.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=128
	UID types.UID `json:"uid"`
	// NodeName is the node the stored archive came from.
	// +kubebuilder:validation:MaxLength=253
	NodeName string `json:"nodeName"`
}

// CheckpointStatus is what the node agent observes besides the archive itself: what pins
// it, and whether it could be read. A readable, unpinned archive has an empty status, so
// that publishing it is one write.
type CheckpointStatus struct {
	// Pinned is true when spec.pinned is set or a .keep marker sits beside the archive.
	// +optional
	Pinned bool `json:"pinned,omitempty"`
	// KeepMarker is true when a .keep marker that a person wrote sits beside the archive on the node.
	// +optional
	KeepMarker bool `json:"keepMarker,omitempty"`

	// Offload is set by the manager when a quota moves the archive to a CheckpointStore
	// instead of deleting it; the node agent then uploads it.
	// +optional
	Offload *OffloadRequest `json:"offload,omitempty"`
	// Location is where the archive is stored once it left its node: set by the node
	// agent after verifying the stored object, before it removes the file. A Checkpoint
	// with a location no longer counts on its node.
	// +optional
	Location *ArchiveLocation `json:"location,omitempty"`
	// DownloadURL is the node agent's answer to AnnotationFetchURL: a presigned GET URL of
	// the stored object, sealed to the request's public key, or why there is none. The
	// agent removes it once the request is gone.
	// +optional
	DownloadURL *SealedDownloadURL `json:"downloadURL,omitempty"`

	// Conditions: Unreadable, present only while the archive could not be read;
	// ArchiveRemoved, on a Checkpoint held by a finalizer after its archive was removed;
	// OffloadFailed, while an upload the manager asked for fails (the file stays).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// SealedDownloadURL is a download URL of a stored archive that only the requester can read.
type SealedDownloadURL struct {
	// PublicKey is the request's key (AnnotationFetchURL) that this answers.
	// +kubebuilder:validation:MaxLength=64
	PublicKey string `json:"publicKey"`
	// Sealed is the URL and what a client needs to use it, sealed to PublicKey with NaCl's
	// anonymous box (X25519, XSalsa20-Poly1305), base64. Empty when Message says why there
	// is no URL.
	// +kubebuilder:validation:MaxLength=16384
	// +optional
	Sealed string `json:"sealed,omitempty"`
	// Expires is when the URL stops working.
	// +optional
	Expires *metav1.Time `json:"expires,omitempty"`
	// Message says why there is no URL (a request that is not a key, a store that does not
	// answer, an object that is not this Checkpoint's).
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Message string `json:"message,omitempty"`
}

// Condition types of a Checkpoint.
const (
	// CheckpointConditionUnreadable is true when the archive could not be read; it is
	// never deleted automatically.
	CheckpointConditionUnreadable = "Unreadable"
	// CheckpointConditionArchiveRemoved is true when the node agent has removed the archive
	// of a Checkpoint that is being deleted but that a finalizer still holds: until then
	// the archive is on the node, and counts against every limit.
	CheckpointConditionArchiveRemoved = "ArchiveRemoved"
	// CheckpointConditionOffloadFailed is true while the upload that status.offload asks
	// for fails; the archive stays on its node and the agent retries with backoff.
	CheckpointConditionOffloadFailed = "OffloadFailed"
	// CheckpointConditionFetched is true while a copy of an offloaded archive, brought back
	// by AnnotationFetch, is on its node: the copy counts there, and the limits free it
	// before any other archive (removing it loses nothing: the archive stays stored). False
	// says why the last fetch failed, or that the copy went.
	CheckpointConditionFetched = "Fetched"
)

// Checkpoint stands for one container checkpoint archive on one node. The node agent
// creates it; a person deleting it, or the manager's pruning, deletes the archive, while
// the namespace's deletion or uninstalling never does (docs/node-agent.md, "Deletion").
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ckpt,categories=checkpoint-quota
// +kubebuilder:printcolumn:name="Pod",type=string,JSONPath=`.spec.archive.podName`
// +kubebuilder:printcolumn:name="Container",type=string,JSONPath=`.spec.archive.containerName`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.archive.nodeName`
// +kubebuilder:printcolumn:name="Size",type=string,JSONPath=`.spec.archive.size`
// +kubebuilder:printcolumn:name="Pinned",type=boolean,JSONPath=`.status.pinned`
// +kubebuilder:printcolumn:name="Stored-In",type=string,JSONPath=`.status.location.store`,description="The CheckpointStore that holds the archive once it left its node; empty while it is on the node"
// +kubebuilder:printcolumn:name="Copy-Of",type=string,JSONPath=`.spec.archive.copyOf.name`,priority=1,description="The stored Checkpoint this archive is a copy of, fetched to this node"
// +kubebuilder:printcolumn:name="Orphan-Of",type=string,JSONPath=`.spec.archive.orphanOf`,description="The namespace the archive was taken in, when that namespace is gone"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.spec.archive.checkpointTime`,description="Time since the checkpoint was taken"
// +kubebuilder:selectablefield:JSONPath=`.spec.archive.nodeName`
// +kubebuilder:selectablefield:JSONPath=`.spec.archive.podName`
// +kubebuilder:selectablefield:JSONPath=`.spec.archive.containerName`
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

// PodNamespace is the namespace the archive was taken in: the Checkpoint's own, or for an
// orphan living in the agent's namespace, the gone namespace spec.archive.orphanOf names.
func (c *Checkpoint) PodNamespace() string {
	if c.Spec.Archive != nil && c.Spec.Archive.OrphanOf != "" {
		return c.Spec.Archive.OrphanOf
	}
	return c.Namespace
}

// IsOffloaded reports whether the archive is in a store rather than on its node.
func (c *Checkpoint) IsOffloaded() bool {
	return c.Status.Location != nil
}

// IsFetchedCopy says whether the Checkpoint is offloaded and a copy of its archive is back
// on its node (Fetched) that nothing asked to move again.
func (c *Checkpoint) IsFetchedCopy() bool {
	return c.Status.Location != nil && c.Status.Offload == nil &&
		meta.IsStatusConditionTrue(c.Status.Conditions, CheckpointConditionFetched)
}

// IsCopy reports whether the archive on the node is a copy of a stored archive: one fetched
// back to its own node (IsFetchedCopy), or a new archive of another node (spec.archive.copyOf).
// Removing it loses nothing while the stored archive stays.
func (c *Checkpoint) IsCopy() bool {
	return c.IsFetchedCopy() || (c.Spec.Archive != nil && c.Spec.Archive.CopyOf != nil)
}

// IsArchiveRemoved reports whether the agent removed the archive of this Checkpoint, which is
// being deleted: it no longer counts.
func (c *Checkpoint) IsArchiveRemoved() bool {
	return meta.IsStatusConditionTrue(c.Status.Conditions, CheckpointConditionArchiveRemoved)
}

// IsUnreadable reports whether the agent could not read the archive.
func (c *Checkpoint) IsUnreadable() bool {
	for _, cond := range c.Status.Conditions {
		if cond.Type == CheckpointConditionUnreadable {
			return cond.Status == metav1.ConditionTrue
		}
	}
	return false
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
