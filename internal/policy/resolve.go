package policy

import (
	"math"
	"slices"
	"strings"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// Subject is one archive as the policy sees it: where it comes from.
type Subject struct {
	Namespace       string
	NamespaceLabels map[string]string
	Pod             string
	// PodLabels is nil when the pod is unknown (gone, or not yet seen): such an archive
	// never matches a podSelector, only podNames.
	PodLabels map[string]string
	Container string
}

// Targets says whether the quota covers the archive.
func (q *Quota) Targets(s Subject) bool {
	return q.MightTarget(s) &&
		(q.PodSelector == nil || (s.PodLabels != nil && q.PodSelector.Matches(s.PodLabels)))
}

// MightTarget says whether the quota targets the archive for some labels of its pod:
// Targets with the podSelector left out, which is what can be known of an archive whose
// pod's labels are not known.
func (q *Quota) MightTarget(s Subject) bool {
	if !q.TargetsNamespace(s.Namespace, s.NamespaceLabels) {
		return false
	}
	if q.PodNames.Len() > 0 && !q.PodNames.Has(s.Pod) {
		return false
	}
	return q.ContainerNames.Len() == 0 || q.ContainerNames.Has(s.Container)
}

// TargetsNamespace says whether the quota can cover archives of the namespace: the part of
// Targets that is the same for every archive of a namespace.
func (q *Quota) TargetsNamespace(namespace string, namespaceLabels map[string]string) bool {
	if q.Ref.Kind == KindQuota && q.Ref.Namespace != namespace {
		return false
	}
	return q.NamespaceSelector == nil || q.NamespaceSelector.Matches(namespaceLabels)
}

// Resolution says which quota governs each limit of one archive.
type Resolution struct {
	// Governing maps each precedence key that some quota sets to the quota that governs it.
	Governing map[Key]*Quota
	// Ceilings maps each key that a namespaced quota governs, and that has a ceiling
	// (Key.HasCeiling), to the cluster quota that would govern it were there no namespaced
	// quota. Its limit holds alongside the governing one, so that a namespaced quota, which
	// the namespace's own people write, can only tighten what the cluster quotas allow.
	Ceilings map[Key]*Quota
	// Targeting are the quotas that target the archive, ordered by Ref.String.
	Targeting []*Quota
	// Groups are the quotas targeting the archive that set a group limit; each holds.
	Groups []*Quota
	// Conflicts are pairs of equally specific quotas that set the same key to different
	// values for this archive; the Winner governs.
	Conflicts []RuntimeConflict
}

// RuntimeConflict is two quotas of the same specificity setting one key for one archive.
type RuntimeConflict struct {
	Key    Key
	Winner Ref
	Loser  Ref
}

// Resolve decides which quota governs each limit of the archive s, and which cluster quota
// caps a namespaced quota's limit (Resolution.Ceilings). Precedence decides among the
// cluster quotas and among the namespaced ones; ties between equally specific quotas go
// to the stricter value (Stricter), and are reported.
func Resolve(quotas []*Quota, s Subject) Resolution {
	res := Resolution{Governing: map[Key]*Quota{}, Ceilings: map[Key]*Quota{}}
	var targeting []*Quota
	for _, q := range quotas {
		if q.Targets(s) {
			targeting = append(targeting, q)
		}
	}
	// A stable order makes the winner of equal values, and the report, deterministic.
	slices.SortFunc(targeting, func(a, b *Quota) int { return strings.Compare(a.Ref.String(), b.Ref.String()) })
	res.Targeting = targeting
	for _, q := range targeting {
		if q.Sets(GroupCheckpoints) || q.Sets(GroupStorage) {
			res.Groups = append(res.Groups, q)
		}
	}
	for _, k := range PrecedenceKeys {
		cluster := res.govern(k, targeting, KindClusterQuota)
		namespaced := res.govern(k, targeting, KindQuota)
		if namespaced == nil {
			if cluster != nil {
				res.Governing[k] = cluster
			}
			continue
		}
		res.Governing[k] = namespaced
		if cluster != nil && k.HasCeiling() {
			res.Ceilings[k] = cluster
		}
	}
	return res
}

// govern returns the quota of kind that governs k among the targeting quotas of that kind:
// the most specific that sets k, the stricter of equally specific ones, whose conflict it
// records.
func (res *Resolution) govern(k Key, targeting []*Quota, kind string) *Quota {
	var best []*Quota
	for _, q := range targeting {
		if q.Ref.Kind != kind || !q.Sets(k) {
			continue
		}
		switch {
		case len(best) == 0 || q.Specificity > best[0].Specificity:
			best = []*Quota{q}
		case q.Specificity == best[0].Specificity:
			best = append(best, q)
		}
	}
	if len(best) == 0 {
		return nil
	}
	winner := best[0]
	for _, q := range best[1:] {
		if Stricter(k, q, winner) {
			winner = q
		}
	}
	for _, q := range best {
		if q != winner && !SameValue(k, q, winner) {
			res.Conflicts = append(res.Conflicts, RuntimeConflict{Key: k, Winner: winner.Ref, Loser: q.Ref})
		}
	}
	return winner
}

// Capped says whether the ceiling of k is below the value of the quota that governs k: the
// cluster quota's limit is then the one that binds.
func (res *Resolution) Capped(k Key) bool {
	c, g := res.Ceilings[k], res.Governing[k]
	return c != nil && g != nil && Stricter(k, c, g)
}

// Stricter says whether a's value for k should win over b's when both are equally
// specific: the smaller limit, or for orphans the policy that keeps more (Retain, else
// the longer grace period), because an orphan deleted by mistake cannot come back.
func Stricter(k Key, a, b *Quota) bool {
	return rank(k, a) < rank(k, b)
}

// SameValue says whether a and b set k to the same value, so that it does not matter which governs.
func SameValue(k Key, a, b *Quota) bool { return rank(k, a) == rank(k, b) }

// rank orders values of k: the lower rank wins a tie of specificity.
func rank(k Key, q *Quota) int64 {
	switch k {
	case MaxAge:
		return int64(*q.MaxAge)
	case Orphans:
		if q.Orphans.Policy != cqv1.OrphanDelete {
			return math.MinInt64
		}
		return -int64(q.Orphans.GracePeriod)
	}
	return q.limitRef(k).Value
}

// Conflict is another quota that the webhook can see sets the same limits as a candidate
// for some of the same archives, with the same specificity.
type Conflict struct {
	Other Ref
	Keys  []Key
}

// Conflicts finds the quotas of others that certainly share archives with candidate, with
// the same specificity, and set one of its precedence keys to a different value. Overlaps
// that only live pods reveal (two different label selectors) are left to Resolve. A quota
// never conflicts with itself, so an update is checked against the others only.
func Conflicts(candidate *Quota, others []*Quota) []Conflict {
	var out []Conflict
	for _, o := range others {
		if o.Ref == candidate.Ref || o.Specificity != candidate.Specificity || !surelyOverlap(candidate, o) {
			continue
		}
		var keys []Key
		for _, k := range PrecedenceKeys {
			if candidate.Sets(k) && o.Sets(k) && !SameValue(k, candidate, o) {
				keys = append(keys, k)
			}
		}
		if len(keys) > 0 {
			out = append(out, Conflict{Other: o.Ref, Keys: keys})
		}
	}
	slices.SortFunc(out, func(a, b Conflict) int { return strings.Compare(a.Other.String(), b.Other.String()) })
	return out
}

// surelyOverlap says whether a and b cover some of the same archives whatever the labels
// of pods are: the same namespace (or equal namespace selectors), equal pod selectors, and
// name lists that are absent or intersect.
func surelyOverlap(a, b *Quota) bool {
	if a.Ref.Kind != b.Ref.Kind {
		return false
	}
	if a.Ref.Kind == KindQuota && a.Ref.Namespace != b.Ref.Namespace {
		return false
	}
	return sameSelector(a.NamespaceSelector, b.NamespaceSelector) &&
		sameSelector(a.PodSelector, b.PodSelector) &&
		namesMeet(a.PodNames, b.PodNames) && namesMeet(a.ContainerNames, b.ContainerNames)
}

// mayOverlap says whether a and b could cover some of the same archives for some pods.
// nsLabels gives the labels of known namespaces, to match a cluster quota against a
// namespaced one; an unknown namespace may match.
func mayOverlap(a, b *Quota, nsLabels map[string]map[string]string) bool {
	if !namesMeet(a.PodNames, b.PodNames) || !namesMeet(a.ContainerNames, b.ContainerNames) {
		return false
	}
	switch {
	case a.Ref.Kind == KindQuota && b.Ref.Kind == KindQuota:
		return a.Ref.Namespace == b.Ref.Namespace
	case a.Ref.Kind == KindQuota:
		return selects(b.NamespaceSelector, a.Ref.Namespace, nsLabels)
	case b.Ref.Kind == KindQuota:
		return selects(a.NamespaceSelector, b.Ref.Namespace, nsLabels)
	}
	return true
}

// covers says whether a covers every archive that b covers, whatever the labels of pods.
func covers(a, b *Quota) bool {
	if a.Ref.Kind == KindQuota {
		// A namespaced quota covers one namespace; a cluster quota may cover many.
		if b.Ref.Kind != KindQuota || a.Ref.Namespace != b.Ref.Namespace {
			return false
		}
	} else if a.NamespaceSelector != nil && (b.Ref.Kind == KindQuota || !sameSelector(a.NamespaceSelector, b.NamespaceSelector)) {
		return false
	}
	if a.PodSelector != nil && !sameSelector(a.PodSelector, b.PodSelector) {
		return false
	}
	return namesCover(a.PodNames, b.PodNames) && namesCover(a.ContainerNames, b.ContainerNames)
}

func selects(sel *Selector, ns string, nsLabels map[string]map[string]string) bool {
	if sel == nil {
		return true
	}
	l, known := nsLabels[ns]
	return !known || sel.Matches(l)
}

func sameSelector(a, b *Selector) bool { return a.Equal(b) }

// namesMeet: an empty list means every name, so it meets any list.
func namesMeet(a, b Names) bool {
	return a.Len() == 0 || b.Len() == 0 || a.meets(b)
}

// namesCover: a covers b when a is every name, or b names only names of a.
func namesCover(a, b Names) bool {
	return a.Len() == 0 || (b.Len() > 0 && a.covers(b))
}
