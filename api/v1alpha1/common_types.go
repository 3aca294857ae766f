package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ResourceLimits caps the archives of one scope: how many, and how many bytes together.
// A limit left out is unlimited.
type ResourceLimits struct {
	// Checkpoints is the most archives the scope may hold. 0 prunes every unpinned archive.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self >= 0",message="must be 0 or more: 0 prunes every unpinned archive; leave the field out for no limit"
	Checkpoints *int64 `json:"checkpoints,omitempty"`

	// Storage is the most bytes the scope's archives may use together, as a quantity such as "10Gi".
	// +optional
	Storage *Size `json:"storage,omitempty"`
}

// QuotaTarget narrows a quota to some pods and containers. Every field given must match.
type QuotaTarget struct {
	// PodSelector selects pods by their labels.
	// +optional
	PodSelector *LabelSelector `json:"podSelector,omitempty"`

	// PodNames selects pods by name: at most 16 names (docs/admission.md, "Bounds"; a
	// podSelector selects more).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=253
	PodNames []string `json:"podNames,omitempty"`

	// ContainerNames selects containers by name, in any selected pod: at most 8 names.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=63
	ContainerNames []string `json:"containerNames,omitempty"`
}

// LabelSelector selects objects by their labels, as metav1.LabelSelector does and with the
// same fields, within bounds that keep each quota small (docs/admission.md, "Bounds").
// +structType=atomic
type LabelSelector struct {
	// MatchLabels selects objects that have each of these labels: at most 8.
	// +optional
	// +kubebuilder:validation:MaxProperties=8
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 317 && size(self[k]) <= 63)",message="a label key is at most 317 characters (a 253-character prefix, '/' and a 63-character name) and a label value at most 63"
	MatchLabels map[string]string `json:"matchLabels,omitempty"`

	// MatchExpressions are requirements on labels, all of which must hold: at most 4.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=4
	MatchExpressions []LabelSelectorRequirement `json:"matchExpressions,omitempty"`
}

// LabelSelectorRequirement is one requirement on a label, as metav1.LabelSelectorRequirement.
type LabelSelectorRequirement struct {
	// Key is the label's key.
	// +kubebuilder:validation:MaxLength=317
	Key string `json:"key"`
	// Operator is In, NotIn, Exists or DoesNotExist.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=16
	Operator metav1.LabelSelectorOperator `json:"operator"`
	// Values are the label values for In and NotIn (at most 8), empty for Exists and DoesNotExist.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=63
	Values []string `json:"values,omitempty"`
}

// Meta is the selector as Kubernetes' own type, for its parsing and validation; nil for nil.
func (s *LabelSelector) Meta() *metav1.LabelSelector {
	if s == nil {
		return nil
	}
	m := &metav1.LabelSelector{MatchLabels: s.MatchLabels}
	for _, r := range s.MatchExpressions {
		m.MatchExpressions = append(m.MatchExpressions, metav1.LabelSelectorRequirement{Key: r.Key, Operator: r.Operator, Values: r.Values})
	}
	return m
}

// OrphanPolicy says what happens to archives whose pod no longer exists.
type OrphanPolicy struct {
	// Policy is Retain (keep orphans, the default) or Delete (prune them after the grace period).
	// +optional
	Policy OrphanPolicyType `json:"policy,omitempty"`

	// GracePeriod is how long an orphan is kept before Delete prunes it. Defaults to 10m.
	// +optional
	GracePeriod *Duration `json:"gracePeriod,omitempty"`
}

// RetentionSpec holds the fields that both quota kinds share besides their limits.
type RetentionSpec struct {
	// MaxCheckpointSize prunes any single archive larger than this, as a quantity such as "2Gi".
	// +optional
	MaxCheckpointSize *Size `json:"maxCheckpointSize,omitempty"`

	// MaxAge prunes archives older than this, in Go's duration notation such as "168h".
	// +optional
	MaxAge *Duration `json:"maxAge,omitempty"`

	// Orphans says what happens to archives whose pod no longer exists.
	// +optional
	Orphans *OrphanPolicy `json:"orphans,omitempty"`

	// Enforcement is Enforce (prune, the default) or DryRun (report what would be pruned, delete nothing).
	// +optional
	Enforcement EnforcementMode `json:"enforcement,omitempty"`

	// Offload moves what this quota prunes to a CheckpointStore instead of deleting it
	// (docs/offload.md). Pinned archives stay on their node.
	// +optional
	Offload *OffloadSpec `json:"offload,omitempty"`
}

// QuotaStatus is what a quota observed and did. Both quota kinds report it.
type QuotaStatus struct {
	// ObservedGeneration is the generation that this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Summary holds the used/hard strings shown by kubectl get.
	// +optional
	Summary UsageSummary `json:"summary,omitempty"`

	// Hard holds the limits of this quota that are in force, keyed by level and resource
	// ("total.checkpoints", "perPod.storage", "maxCheckpointSize", ...); the limits of
	// spec.remoteLimits under "remoteLimits." ("remoteLimits.perPod.storage"), which count
	// the archives in CheckpointStores.
	// +optional
	Hard map[string]resource.Quantity `json:"hard,omitempty"`

	// Used holds the usage measured against each key of Hard. For a per-scope limit
	// ("perPod.storage") it is the usage of the scope nearest its limit.
	// +optional
	Used map[string]resource.Quantity `json:"used,omitempty"`
	// UsageTable is hard and used as a table, the way kubectl describe shows a ResourceQuota:
	// a header line, then one line per limit the quota sets, in level order (total,
	// perNamespace, perPod, perContainer, then maxCheckpointSize, maxAge, orphans, then the
	// same for remoteLimits), with the scope nearest it and, in words, whether it is in
	// force. It is for people (kubectl describe prints it line by line); programs read
	// hard, used and effectivePolicy.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	UsageTable []string `json:"usageTable,omitempty"`

	// Namespaces lists the namespaces nearest their limits (cluster quotas only).
	// +optional
	// +listType=map
	// +listMapKey=namespace
	// +kubebuilder:validation:MaxItems=20
	Namespaces []NamespaceUsage `json:"namespaces,omitempty"`

	// Pods lists the pods nearest their limits.
	// +optional
	// +listType=map
	// +listMapKey=namespace
	// +listMapKey=pod
	// +kubebuilder:validation:MaxItems=20
	Pods []PodUsage `json:"pods,omitempty"`

	// Containers lists the containers nearest their limits.
	// +optional
	// +listType=map
	// +listMapKey=namespace
	// +listMapKey=pod
	// +listMapKey=container
	// +kubebuilder:validation:MaxItems=20
	Containers []ContainerUsage `json:"containers,omitempty"`

	// Nodes lists the nodes nearest their per-node limits and free-space floor (cluster
	// quotas that set them only).
	// +optional
	// +listType=map
	// +listMapKey=node
	// +kubebuilder:validation:MaxItems=20
	Nodes []NodeUsage `json:"nodes,omitempty"`

	// EffectivePolicy says, for each limit this quota sets, whether it is in force and,
	// where it is not everywhere, which quota overrides it.
	// +optional
	// +listType=map
	// +listMapKey=limit
	EffectivePolicy []EffectiveLimit `json:"effectivePolicy,omitempty"`

	// Pruned counts what this quota has pruned.
	// +optional
	Pruned PrunedStatus `json:"pruned,omitempty"`

	// PendingPrune is what pruning would delete now: under DryRun the exact set, under
	// Enforce what is in flight or blocked.
	// +optional
	PendingPrune *PendingPrune `json:"pendingPrune,omitempty"`

	// Conditions: Ready, OverQuota (DryRun, or pins keep a limit from holding) and Conflict.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// UsageSummary holds the used/hard strings of the printer columns.
type UsageSummary struct {
	// Checkpoints is the archive count against the tightest count limit, such as "12/50".
	// +optional
	Checkpoints string `json:"checkpoints,omitempty"`
	// Storage is the bytes against the tightest storage limit, such as "1.2Gi/10Gi".
	// +optional
	Storage string `json:"storage,omitempty"`
	// Remote is the archives and bytes in CheckpointStores against the tightest remote
	// limits, such as "3/20, 1.2Gi/10Gi"; empty for a quota without remoteLimits.
	// +optional
	Remote string `json:"remote,omitempty"`
}

// Usage is the count and bytes of a set of archives.
type Usage struct {
	// Checkpoints is the number of archives.
	Checkpoints int64 `json:"checkpoints"`
	// Storage is the bytes of the archives together.
	Storage resource.Quantity `json:"storage"`
}

// NamespaceUsage is the usage of one namespace.
type NamespaceUsage struct {
	// Namespace of the archives.
	Namespace string `json:"namespace"`
	Usage     `json:",inline"`
}

// PodUsage is the usage of one pod.
type PodUsage struct {
	// Namespace of the pod.
	Namespace string `json:"namespace"`
	// Pod is the pod's name.
	Pod   string `json:"pod"`
	Usage `json:",inline"`
}

// ContainerUsage is the usage of one container of a pod.
type ContainerUsage struct {
	// Namespace of the pod.
	Namespace string `json:"namespace"`
	// Pod is the pod's name.
	Pod string `json:"pod"`
	// Container is the container's name.
	Container string `json:"container"`
	Usage     `json:",inline"`
}

// LimitState says whether a limit of a quota is in force.
// +kubebuilder:validation:Enum=InForce;Capped;PartlyOverridden;Overridden
type LimitState string

const (
	// LimitInForce applies to every archive the quota targets.
	LimitInForce LimitState = "InForce"
	// LimitCapped is in force, but a ClusterCheckpointQuota sets a smaller limit for some
	// or all of its archives, and that ceiling binds (cappedBy, cappedAt).
	LimitCapped LimitState = "Capped"
	// LimitPartlyOverridden applies to some archives; a more specific quota governs the rest.
	LimitPartlyOverridden LimitState = "PartlyOverridden"
	// LimitOverridden applies to no archive: a more specific quota governs them all.
	LimitOverridden LimitState = "Overridden"
)

// EffectiveLimit reports one limit of a quota and whether it is in force.
type EffectiveLimit struct {
	// Limit names the limit, such as "perPod.storage" or "maxAge".
	Limit string `json:"limit"`
	// Value is the limit as the quota sets it.
	Value string `json:"value"`
	// State says whether the limit is in force.
	State LimitState `json:"state"`
	// OverriddenBy names the quotas that take precedence for some or all archives,
	// as "CheckpointQuota shop/cache" or "ClusterCheckpointQuota default".
	// +optional
	// +listType=atomic
	OverriddenBy []string `json:"overriddenBy,omitempty"`
	// CappedBy names the ClusterCheckpointQuota whose smaller limit binds instead, for some
	// or all archives: a CheckpointQuota can only tighten what the cluster quotas allow.
	// +optional
	// +kubebuilder:validation:MaxLength=300
	CappedBy string `json:"cappedBy,omitempty"`
	// CappedAt is the value of that ceiling, as its quota sets it.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	CappedAt string `json:"cappedAt,omitempty"`
}

// PrunedStatus counts what a quota has pruned since it was created.
type PrunedStatus struct {
	// Checkpoints is the number of archives pruned.
	// +optional
	Checkpoints int64 `json:"checkpoints,omitempty"`
	// Storage is the bytes pruned.
	// +optional
	Storage resource.Quantity `json:"storage,omitempty"`
	// LastTime is when the last archive was pruned.
	// +optional
	LastTime *metav1.Time `json:"lastTime,omitempty"`
}

// PendingPrune is a set of archives that pruning would delete.
type PendingPrune struct {
	// Checkpoints is the number of archives.
	Checkpoints int64 `json:"checkpoints"`
	// Storage is their bytes together.
	Storage resource.Quantity `json:"storage"`
	// Names lists the Checkpoint objects, oldest first (at most 50; Checkpoints counts all).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=50
	Names []string `json:"names,omitempty"`
}

// Condition types of both quota kinds.
const (
	// ConditionReady is true when the quota's usage was computed from a complete view.
	ConditionReady = "Ready"
	// ConditionOverQuota is true when usage exceeds a limit that pruning does not bring back:
	// under DryRun, or when pinned archives block it.
	ConditionOverQuota = "OverQuota"
	// ConditionConflict is true when another quota of the same specificity sets the same
	// limit for some of the same archives.
	ConditionConflict = "Conflict"
)
