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
// Precedence decides among cluster quotas and among namespaced quotas. A namespaced quota,
// written by the namespace's own people, never loosens what the cluster quotas allow: where
// one governs a key, the cluster quota that would govern it otherwise is its ceiling
// (Resolution.Ceilings), whose limit holds alongside, so the smaller binds.
//
// Two quotas of the same specificity that set the same Key to different values for the
// same archive conflict: the webhook rejects the overlap it can see (Conflicts), and for
// the rest the smaller limit wins (for orphans, the policy that keeps more) and Resolve
// reports the pair.
package policy

import (
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	MaxCheckpointSize    Key = NameMaxCheckpointSize
	MaxAge               Key = NameMaxAge
	Orphans              Key = NameOrphans
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

// HasCeiling says whether a cluster quota's value of k bounds a namespaced quota's: every
// count, size and age limit. The orphan rule has none: an orphan that a namespaced quota
// retains still counts against every limit, so keeping it escapes none.
func (k Key) HasCeiling() bool { return !k.IsGroup() && k != Orphans }

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
	NamespaceSelector *Selector
	// PodSelector selects pods by label; nil selects all.
	PodSelector *Selector
	// PodNames and ContainerNames select by name; empty selects all.
	PodNames       Names
	ContainerNames Names

	// MaxAge and Orphans are set when the quota sets them.
	MaxAge  *time.Duration
	Orphans *OrphanRule
	// Enforcement is the quota's mode; empty reads as Enforce.
	Enforcement cqv1.EnforcementMode
	// Remote is the quota's twin for the remote tier (remote.go): spec.remoteLimits as its
	// limits; nil when the quota sets no remoteLimits.
	Remote *Quota
	// stored is the twin that governs the stored archives (Stored): Remote, or one with
	// the orphan rule alone.
	stored *Quota

	// limits holds each limit the quota sets, at most one per key: a few, looked through
	// faster than a map's hashing, in a fifth of its memory.
	limits []Limit
}

// Sets says whether the quota sets the limit k.
func (q *Quota) Sets(k Key) bool { return q.limitIndex(k) >= 0 }

func (q *Quota) limitIndex(k Key) int {
	for i := range q.limits {
		if q.limits[i].Key == k {
			return i
		}
	}
	return -1
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

// limitRef is the quota's own limit k, which nothing changes once parsed; the zero Limit
// when the quota does not set k.
func (q *Quota) limitRef(k Key) *Limit {
	if i := q.limitIndex(k); i >= 0 {
		return &q.limits[i]
	}
	return &Limit{Field: noField}
}

// Limit is the limit k of the quota; the zero Limit when the quota does not set k.
func (q *Quota) Limit(k Key) Limit {
	if i := q.limitIndex(k); i >= 0 {
		return q.limits[i]
	}
	return Limit{Field: noField}
}

// FromCheckpointQuota normalises a CheckpointQuota. It fails on a value that does not
// parse (admission rejects those, so only an object older than the webhook has one).
func FromCheckpointQuota(cq *cqv1.CheckpointQuota) (*Quota, error) {
	q := newQuota(Ref{Kind: KindQuota, Namespace: cq.Namespace, Name: cq.Name})
	var err error
	if err = q.setTarget(cq.Spec.Target); err != nil {
		return nil, err
	}
	q.Specificity = quotaSpecificity(cq.Spec.Target)
	if err := q.setAll(CheckpointQuotaLevels(cq), &cq.Spec.RetentionSpec); err != nil {
		return nil, err
	}
	levels := CheckpointQuotaRemoteLevels(cq)
	t, err := remoteTwin(q, levels, cq.Spec.RemoteLimits.Age())
	if err != nil {
		return nil, err
	}
	q.setTwins(t, levels)
	return q, nil
}

// FromClusterQuota normalises a ClusterCheckpointQuota. It fails on a value that does not parse.
func FromClusterQuota(cq *cqv1.ClusterCheckpointQuota) (*Quota, error) {
	q := newQuota(Ref{Kind: KindClusterQuota, Name: cq.Name})
	var err error
	if q.NamespaceSelector, err = newSelector(cq.Spec.NamespaceSelector.Meta(), "spec.namespaceSelector"); err != nil {
		return nil, err
	}
	if err = q.setTarget(cq.Spec.Target); err != nil {
		return nil, err
	}
	q.Specificity = ClusterUntargeted
	if pods, containers := narrows(cq.Spec.Target); pods || containers {
		q.Specificity = ClusterTargeted
	}
	if err := q.setAll(ClusterQuotaLevels(cq), &cq.Spec.RetentionSpec); err != nil {
		return nil, err
	}
	levels := ClusterQuotaRemoteLevels(cq)
	t, err := remoteTwin(q, levels, cq.Spec.RemoteLimits.Age())
	if err != nil {
		return nil, err
	}
	q.setTwins(t, levels)
	return q, nil
}

// narrows says whether a target narrows a quota to some pods (by name, or by a selector
// that is not empty) and to some containers.
func narrows(t *cqv1.QuotaTarget) (pods, containers bool) {
	if t == nil {
		return false, false
	}
	return len(t.PodNames) > 0 || !selectsAll(t.PodSelector.Meta()), len(t.ContainerNames) > 0
}

// quotaSpecificity is the specificity of a CheckpointQuota with target t.
func quotaSpecificity(t *cqv1.QuotaTarget) Specificity {
	switch pods, containers := narrows(t); {
	case containers:
		return ContainerTargeted
	case pods:
		return PodTargeted
	}
	return NamespaceUntargeted
}

func newQuota(ref Ref) *Quota {
	return &Quota{Ref: ref}
}

func (q *Quota) setTarget(t *cqv1.QuotaTarget) error {
	if t == nil {
		return nil
	}
	var err error
	if q.PodSelector, err = newSelector(t.PodSelector.Meta(), "spec.target.podSelector"); err != nil {
		return err
	}
	q.PodNames = namesOf(t.PodNames)
	q.ContainerNames = namesOf(t.ContainerNames)
	return nil
}

func selectsAll(ls *metav1.LabelSelector) bool {
	return ls == nil || (len(ls.MatchLabels) == 0 && len(ls.MatchExpressions) == 0)
}

func (q *Quota) set(l Limit) {
	if i := q.limitIndex(l.Key); i >= 0 {
		q.limits[i] = l
	} else {
		q.limits = append(q.limits, l)
	}
}

// setAll sets the limits of levels, widest first, then the retention rules; it stops at
// the first value that does not parse.
func (q *Quota) setAll(levels []Level, r *cqv1.RetentionSpec) error {
	for _, lv := range levels {
		if err := q.setLevel(lv); err != nil {
			return err
		}
	}
	if err := q.setRetention(r); err != nil {
		return err
	}
	// The limits at their number: grown by appends, the nine of a maximal quota took the
	// room of sixteen, 1.8 KB per quota.
	q.limits = slices.Clone(q.limits)
	return nil
}

func (q *Quota) setLevel(lv Level) error {
	if lv.Limits == nil {
		return nil
	}
	if n := lv.Limits.Checkpoints; n != nil {
		q.set(lv.countLimit(*n))
	}
	if s := lv.Limits.Storage; s != nil {
		l, err := lv.storageLimit(*s)
		if err != nil {
			return err
		}
		q.set(l)
	}
	return nil
}

func (q *Quota) setRetention(r *cqv1.RetentionSpec) error {
	q.Enforcement = r.Enforcement
	if r.MaxCheckpointSize != nil {
		l, err := sizeLimit(retentionField(MaxCheckpointSize, NameMaxCheckpointSize, ResourceStorage), *r.MaxCheckpointSize)
		if err != nil {
			return err
		}
		q.set(l)
	}
	if r.MaxAge != nil {
		d, err := r.MaxAge.Duration()
		if err != nil {
			return fmt.Errorf("spec.maxAge: %w", err)
		}
		q.MaxAge = &d
		l := Limit{Field: retentionField(MaxAge, NameMaxAge, ""), Written: string(*r.MaxAge), Value: int64(d)}
		q.set(l)
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
		l := Limit{Field: retentionField(Orphans, NameOrphans, ""), Written: string(o.Policy)}
		if o.Policy == cqv1.OrphanDelete {
			l.Written = fmt.Sprintf("Delete after %s", formatDuration(r.Orphans.GracePeriod))
		}
		q.set(l)
	}
	return nil
}

func formatDuration(d *cqv1.Duration) string {
	if d == nil {
		return "0s"
	}
	return string(*d)
}
