// Package policy decides which quota's limit governs a checkpoint archive: precedence, conflicts and the effective policy, as pure functions without a client.
//
// Both quota kinds are first normalised into a Quota. Every limit of a quota has a Key:
// a level and a resource ("perPod.storage") or a retention rule ("maxAge"). For each
// archive and each Key, the quota of the highest Specificity that targets the archive and
// sets the Key governs it (Resolve). A namespaced quota without a target sets the
// namespace level with its limits.total, so it competes with a cluster quota's
// limits.perNamespace. The limits.total of a targeted quota, and of a cluster quota, is a
// group limit (GroupCheckpoints, GroupStorage) that always holds alongside the others.
//
// Two quotas of the same specificity that set the same Key to different values for the
// same archive conflict: the webhook rejects the overlap it can see (Conflicts), and for
// the rest the smaller limit wins (for orphans, the policy that keeps more) and Resolve
// reports the pair.
package policy

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// Kinds of quota, as Ref.Kind.
const (
	KindQuota        = "CheckpointQuota"
	KindClusterQuota = "ClusterCheckpointQuota"
)

// Ref names a quota.
type Ref struct {
	Kind      string
	Namespace string
	Name      string
}

// String reads "CheckpointQuota shop/cache" or "ClusterCheckpointQuota default".
func (r Ref) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// Specificity orders quotas: for an archive, the most specific quota that sets a limit wins.
type Specificity int

// Specificities, least specific first.
const (
	ClusterUntargeted Specificity = iota
	ClusterTargeted
	NamespaceUntargeted
	PodTargeted
	ContainerTargeted
)

func (s Specificity) String() string {
	switch s {
	case ClusterUntargeted:
		return "cluster quota without a target"
	case ClusterTargeted:
		return "cluster quota with a target"
	case NamespaceUntargeted:
		return "namespace quota without a target"
	case PodTargeted:
		return "quota naming pods"
	case ContainerTargeted:
		return "quota naming containers"
	}
	return fmt.Sprintf("Specificity(%d)", int(s))
}

// Key names one limit: a level and a resource, or a retention rule.
type Key string

// Keys that follow precedence.
const (
	NamespaceCheckpoints Key = "perNamespace.checkpoints"
	NamespaceStorage     Key = "perNamespace.storage"
	PodCheckpoints       Key = "perPod.checkpoints"
	PodStorage           Key = "perPod.storage"
	ContainerCheckpoints Key = "perContainer.checkpoints"
	ContainerStorage     Key = "perContainer.storage"
	MaxCheckpointSize    Key = "maxCheckpointSize"
	MaxAge               Key = "maxAge"
	Orphans              Key = "orphans"
)

// Group keys: limits.total of a targeted or cluster quota. They hold alongside every other
// limit and never compete.
const (
	GroupCheckpoints Key = "group.checkpoints"
	GroupStorage     Key = "group.storage"
)

// PrecedenceKeys are the keys that the most specific quota governs, in report order.
var PrecedenceKeys = []Key{
	NamespaceCheckpoints, NamespaceStorage, PodCheckpoints, PodStorage,
	ContainerCheckpoints, ContainerStorage, MaxCheckpointSize, MaxAge, Orphans,
}

// AllKeys are PrecedenceKeys and the group keys, in report order.
var AllKeys = append([]Key{GroupCheckpoints, GroupStorage}, PrecedenceKeys...)

// IsGroup says whether k is a group limit, which never competes.
func (k Key) IsGroup() bool { return k == GroupCheckpoints || k == GroupStorage }

// OrphanRule is what a quota does with archives whose pod is gone.
type OrphanRule struct {
	Policy      cqv1.OrphanPolicyType
	GracePeriod time.Duration
}

// Quota is either quota kind, normalised for deciding precedence.
type Quota struct {
	Ref         Ref
	Specificity Specificity

	// NamespaceSelector selects the namespaces of a cluster quota; nil selects all.
	NamespaceSelector labels.Selector
	// PodSelector selects pods by label; nil selects all.
	PodSelector labels.Selector
	// PodNames and ContainerNames select by name; empty selects all.
	PodNames       sets.Set[string]
	ContainerNames sets.Set[string]

	// Limits holds counts and bytes (maxCheckpointSize included) by key.
	Limits map[Key]int64
	// MaxAge and Orphans are set when the quota sets them.
	MaxAge  *time.Duration
	Orphans *OrphanRule
	// Enforcement is the quota's mode; empty reads as Enforce.
	Enforcement cqv1.EnforcementMode

	// fields maps each key the quota sets to its field path, such as "spec.limits.total.storage".
	fields map[Key]string
	// values maps each key the quota sets to its value as written, for reports.
	values map[Key]string
}

// Sets says whether the quota sets the limit k.
func (q *Quota) Sets(k Key) bool {
	_, ok := q.fields[k]
	return ok
}

// Keys lists the limits the quota sets, in report order.
func (q *Quota) Keys() []Key {
	var keys []Key
	for _, k := range AllKeys {
		if q.Sets(k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// Field is the path of the field that sets k, such as "spec.limits.total.storage";
// empty when the quota does not set k.
func (q *Quota) Field(k Key) string { return q.fields[k] }

// LimitName is the name of k as the user wrote it, such as "total.storage" or "maxAge",
// the name used by status.hard and status.effectivePolicy.
func (q *Quota) LimitName(k Key) string {
	f := q.fields[k]
	for _, prefix := range []string{"spec.limits.", "spec."} {
		if len(f) > len(prefix) && f[:len(prefix)] == prefix {
			return f[len(prefix):]
		}
	}
	return f
}

// Value is k's value as written, such as "10Gi" or "Delete after 10m".
func (q *Quota) Value(k Key) string { return q.values[k] }

// FromCheckpointQuota normalises a CheckpointQuota. It fails on a value that does not
// parse (admission rejects those, so only an object older than the webhook has one).
func FromCheckpointQuota(cq *cqv1.CheckpointQuota) (*Quota, error) {
	q := newQuota(Ref{Kind: KindQuota, Namespace: cq.Namespace, Name: cq.Name})
	var err error
	if err = q.setTarget(cq.Spec.Target); err != nil {
		return nil, err
	}
	switch {
	case q.ContainerNames.Len() > 0:
		q.Specificity = ContainerTargeted
	case q.PodSelector != nil || q.PodNames.Len() > 0:
		q.Specificity = PodTargeted
	default:
		q.Specificity = NamespaceUntargeted
	}
	l := cq.Spec.Limits
	// Without a target, limits.total is the namespace level and competes with a cluster
	// quota's perNamespace; with one, it caps the targeted group alongside.
	totalCount, totalStorage := GroupCheckpoints, GroupStorage
	if q.Specificity == NamespaceUntargeted {
		totalCount, totalStorage = NamespaceCheckpoints, NamespaceStorage
	}
	for _, err := range []error{
		q.setLimits(l.Total, "spec.limits.total", totalCount, totalStorage),
		q.setLimits(l.PerPod, "spec.limits.perPod", PodCheckpoints, PodStorage),
		q.setLimits(l.PerContainer, "spec.limits.perContainer", ContainerCheckpoints, ContainerStorage),
		q.setRetention(&cq.Spec.RetentionSpec),
	} {
		if err != nil {
			return nil, err
		}
	}
	return q, nil
}

// FromClusterQuota normalises a ClusterCheckpointQuota. It fails on a value that does not parse.
func FromClusterQuota(cq *cqv1.ClusterCheckpointQuota) (*Quota, error) {
	q := newQuota(Ref{Kind: KindClusterQuota, Name: cq.Name})
	var err error
	if q.NamespaceSelector, err = selector(cq.Spec.NamespaceSelector, "spec.namespaceSelector"); err != nil {
		return nil, err
	}
	if err = q.setTarget(cq.Spec.Target); err != nil {
		return nil, err
	}
	q.Specificity = ClusterUntargeted
	if q.PodSelector != nil || q.PodNames.Len() > 0 || q.ContainerNames.Len() > 0 {
		q.Specificity = ClusterTargeted
	}
	l := cq.Spec.Limits
	for _, err := range []error{
		q.setLimits(l.Total, "spec.limits.total", GroupCheckpoints, GroupStorage),
		q.setLimits(l.PerNamespace, "spec.limits.perNamespace", NamespaceCheckpoints, NamespaceStorage),
		q.setLimits(l.PerPod, "spec.limits.perPod", PodCheckpoints, PodStorage),
		q.setLimits(l.PerContainer, "spec.limits.perContainer", ContainerCheckpoints, ContainerStorage),
		q.setRetention(&cq.Spec.RetentionSpec),
	} {
		if err != nil {
			return nil, err
		}
	}
	return q, nil
}

func newQuota(ref Ref) *Quota {
	return &Quota{
		Ref: ref, Limits: map[Key]int64{}, fields: map[Key]string{}, values: map[Key]string{},
		PodNames: sets.New[string](), ContainerNames: sets.New[string](),
	}
}

func (q *Quota) setTarget(t *cqv1.QuotaTarget) error {
	if t == nil {
		return nil
	}
	var err error
	if q.PodSelector, err = selector(t.PodSelector, "spec.target.podSelector"); err != nil {
		return err
	}
	q.PodNames = sets.New(t.PodNames...)
	q.ContainerNames = sets.New(t.ContainerNames...)
	return nil
}

// selector parses a label selector; an empty one selects everything and reads as nil, so
// that `podSelector: {}` is the same as no selector.
func selector(ls *metav1.LabelSelector, path string) (labels.Selector, error) {
	if ls == nil || (len(ls.MatchLabels) == 0 && len(ls.MatchExpressions) == 0) {
		return nil, nil
	}
	s, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

func (q *Quota) set(k Key, field, value string) {
	q.fields[k], q.values[k] = field, value
}

func (q *Quota) setLimits(l *cqv1.ResourceLimits, path string, count, storage Key) error {
	if l == nil {
		return nil
	}
	if l.Checkpoints != nil {
		q.Limits[count] = *l.Checkpoints
		q.set(count, path+".checkpoints", fmt.Sprint(*l.Checkpoints))
	}
	if l.Storage != nil {
		b, ok := l.Storage.Bytes()
		if !ok {
			return fmt.Errorf("%s.storage: %q is not a quantity", path, *l.Storage)
		}
		q.Limits[storage] = b
		q.set(storage, path+".storage", string(*l.Storage))
	}
	return nil
}

func (q *Quota) setRetention(r *cqv1.RetentionSpec) error {
	q.Enforcement = r.Enforcement
	if r.MaxCheckpointSize != nil {
		b, ok := r.MaxCheckpointSize.Bytes()
		if !ok {
			return fmt.Errorf("spec.maxCheckpointSize: %q is not a quantity", *r.MaxCheckpointSize)
		}
		q.Limits[MaxCheckpointSize] = b
		q.set(MaxCheckpointSize, "spec.maxCheckpointSize", string(*r.MaxCheckpointSize))
	}
	if r.MaxAge != nil {
		d, err := r.MaxAge.Duration()
		if err != nil {
			return fmt.Errorf("spec.maxAge: %w", err)
		}
		q.MaxAge = &d
		q.set(MaxAge, "spec.maxAge", string(*r.MaxAge))
	}
	if r.Orphans != nil {
		o := &OrphanRule{Policy: r.Orphans.Policy}
		if o.Policy == "" {
			o.Policy = cqv1.OrphanRetain
		}
		if r.Orphans.GracePeriod != nil {
			d, err := r.Orphans.GracePeriod.Duration()
			if err != nil {
				return fmt.Errorf("spec.orphans.gracePeriod: %w", err)
			}
			o.GracePeriod = d
		}
		q.Orphans = o
		value := string(o.Policy)
		if o.Policy == cqv1.OrphanDelete {
			value = fmt.Sprintf("Delete after %s", formatDuration(r.Orphans.GracePeriod))
		}
		q.set(Orphans, "spec.orphans", value)
	}
	return nil
}

func formatDuration(d *cqv1.Duration) string {
	if d == nil {
		return "0s"
	}
	return string(*d)
}
