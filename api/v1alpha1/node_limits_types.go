package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// NodeFilesystemSpec keeps free space on the filesystem of each node's checkpoint directories.
type NodeFilesystemSpec struct {
	// MinFree is the free space to keep on each checkpoint filesystem: a quantity such as
	// "50Gi", or a percentage of the filesystem such as "15%". When a node has less, its
	// oldest unpinned archives are pruned, whatever their namespace, until the floor holds.
	// +optional
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int || size(self) <= 64",message="at most 64 characters: write a quantity such as \"50Gi\" or a percentage such as \"15%\""
	MinFree *intstr.IntOrString `json:"minFree,omitempty"`
}

// NodeUsage is the usage of one node against the per-node limits and the floor.
type NodeUsage struct {
	// Node is the node's name.
	Node  string `json:"node"`
	Usage `json:",inline"`
	// FilesystemFree is the free space of the node's fullest checkpoint filesystem, as the
	// manager estimates it now (the agent's last figure, corrected for archives pruned since).
	// +optional
	FilesystemFree *resource.Quantity `json:"filesystemFree,omitempty"`
	// MinFree is the floor in force on that filesystem, in bytes.
	// +optional
	MinFree *resource.Quantity `json:"minFree,omitempty"`
}
