package v1alpha1

// RemoteLimits bound what a CheckpointQuota's archives hold in CheckpointStores once
// offload moved them off their nodes (docs/offload.md, "Remote limits"): the same levels as
// spec.limits, and an age. The manager deletes the Checkpoints of stored archives over them,
// oldest first, and the node agent that stored each archive deletes its object. A
// ClusterCheckpointQuota's remoteLimits are ceilings for these, as its limits are for
// spec.limits. A limit left out is unlimited.
type RemoteLimits struct {
	// Total caps every stored archive the quota targets, together.
	// +optional
	Total *ResourceLimits `json:"total,omitempty"`
	// PerPod caps the stored archives of each targeted pod.
	// +optional
	PerPod *ResourceLimits `json:"perPod,omitempty"`
	// PerContainer caps the stored archives of each targeted container of each pod.
	// +optional
	PerContainer *ResourceLimits `json:"perContainer,omitempty"`
	// MaxAge deletes stored archives older than this (by checkpoint time), in Go's duration
	// notation such as "720h".
	// +optional
	MaxAge *Duration `json:"maxAge,omitempty"`
}

// ClusterRemoteLimits bound what the archives of the selected namespaces hold in
// CheckpointStores, as ClusterQuotaLimits bound them on nodes; they are ceilings for the
// remoteLimits of CheckpointQuotas.
type ClusterRemoteLimits struct {
	// Total caps the stored archives of all selected namespaces together.
	// +optional
	Total *ResourceLimits `json:"total,omitempty"`
	// PerNamespace caps the stored archives of each selected namespace.
	// +optional
	PerNamespace *ResourceLimits `json:"perNamespace,omitempty"`
	// PerPod caps the stored archives of each targeted pod.
	// +optional
	PerPod *ResourceLimits `json:"perPod,omitempty"`
	// PerContainer caps the stored archives of each targeted container of each pod.
	// +optional
	PerContainer *ResourceLimits `json:"perContainer,omitempty"`
	// MaxAge deletes stored archives older than this (by checkpoint time).
	// +optional
	MaxAge *Duration `json:"maxAge,omitempty"`
}

// Age is maxAge; nil when the remoteLimits themselves are left out.
func (r *RemoteLimits) Age() *Duration {
	if r == nil {
		return nil
	}
	return r.MaxAge
}

// Age is maxAge; nil when the remoteLimits themselves are left out.
func (r *ClusterRemoteLimits) Age() *Duration {
	if r == nil {
		return nil
	}
	return r.MaxAge
}
