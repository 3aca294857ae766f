package quota

import (
	"sort"

	"k8s.io/apimachinery/pkg/labels"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// Conflict is a limit that this quota and another one of the same specificity both set
// for the archives of a pod; the smaller one governs.
type Conflict struct {
	Key   policy.Key
	Other policy.Ref
	// Pod names the pod whose archives both target, as "shop/cache-0".
	Pod string
	// Won says whether this quota's limit is the one in force.
	Won bool
}

// MaxConflicts bounds the conflicts reported per quota.
const MaxConflicts = 10

// Labels are what resolution reads of the cluster besides the quotas and the archives.
type Labels struct {
	// Namespaces are the labels of each namespace.
	Namespaces map[string]map[string]string
	// Pod returns the labels of the archive's pod, nil when that pod (with that UID) is not
	// known.
	Pod func(a *Archive) map[string]string
	// Unparsed are the quotas that do not parse: the archives of every namespace one of
	// them might target are held (HeldByUnparsed), since what it would keep is not known.
	Unparsed []policy.Ref
}

// HeldByLabels is why an archive is held whose pod's labels are not known (its pod is gone,
// or not yet seen) where a quota that selects pods by label might target it.
const HeldByLabels = "their pods are gone and a quota that selects pods by label might govern them " +
	"(delete those not needed: kubectl delete checkpoint)"

// HeldByUnparsed is why the archives of a namespace are held that a quota which does not
// parse might target.
func HeldByUnparsed(ref policy.Ref) string {
	return ref.String() + ", which might govern them, does not parse (fix its spec)"
}

// Governance is which quotas govern each archive: the rules Compute applies, and what
// each quota reports of its own limits (where they are in force, whom they conflict with).
type Governance struct {
	// Quotas describes the quotas resolved, in their order: Input.Quotas.
	Quotas []Meta
	// Rules are the rules of each archive, indexed like the archives: Input.Rules. The
	// archives of one container share one value, which nobody may modify.
	Rules []*Rules

	quotas    []*policy.Quota
	targeted  [][]policy.Resolution
	conflicts [][]Conflict
}

// Govern asks internal/policy which quota governs each limit of each archive. It
// resolves each container once (its archives share their pod, namespace and labels), and
// each distinct subject once (see subjectKey).
func Govern(quotas []*policy.Quota, archives []Archive, labels Labels) *Governance {
	r := newResolver(quotas, labels)
	res := &Governance{Quotas: make([]Meta, len(quotas)), Rules: make([]*Rules, len(archives)), quotas: quotas,
		targeted: make([][]policy.Resolution, len(quotas)), conflicts: make([][]Conflict, len(quotas))}
	for i, q := range quotas {
		res.Quotas[i] = Meta{Name: q.Ref.String(), DryRun: q.Enforcement == cqv1.EnforcementDryRun, Cluster: q.Ref.Kind == policy.KindClusterQuota}
	}
	containers := map[incarnation]*Rules{}
	for i := range archives {
		a := &archives[i]
		k := incarnation{namespace: a.Namespace, pod: a.Pod, podUID: a.PodUID, container: a.Container}
		rules, ok := containers[k]
		if !ok {
			// Each container gets its own value (sharing the limits of alike subjects), so that
			// Compute tells containers apart by pointer.
			rules = new(Rules)
			*rules = *r.resolve(a, res)
			containers[k] = rules
		}
		res.Rules[i] = rules
	}
	return res
}

// incarnation is one container of one pod: its archives resolve alike.
type incarnation struct {
	namespace, pod, podUID, container string
}

// resolver remembers, while one Govern runs, the candidates of each namespace and the
// resolution of each distinct subject.
type resolver struct {
	quotas []*policy.Quota
	index  map[policy.Ref]int
	labels Labels
	// inNamespace are the quotas that can target each namespace's archives: an archive is
	// resolved against those few, not every quota.
	inNamespace map[string]*candidates
	// resolved remembers the resolution of each distinct subject.
	resolved map[subjectKey]*resolution
	seen     []map[conflictKey]bool
}

func newResolver(quotas []*policy.Quota, labels Labels) *resolver {
	r := &resolver{quotas: quotas, index: map[policy.Ref]int{}, labels: labels,
		inNamespace: map[string]*candidates{}, resolved: map[subjectKey]*resolution{},
		seen: make([]map[conflictKey]bool, len(quotas))}
	for i, q := range quotas {
		r.index[q.Ref] = i
	}
	return r
}

// candidates are the quotas that can target the archives of one namespace, whatever their
// pod and container, and which of the archive's own fields any of them looks at.
type candidates struct {
	quotas                              []*policy.Quota
	byPodName, byPodLabels, byContainer bool
	// unparsed is why the namespace's archives are held, when a quota that does not parse
	// might target them.
	unparsed string
}

// subjectKey is what the resolution of an archive depends on: its namespace, and its pod's
// name, its pod's labels and its container only where some candidate quota selects by them.
// Archives with the same key resolve alike, so each key is resolved once.
type subjectKey struct {
	namespace, pod, podLabels, container string
	podKnown                             bool
}

type resolution struct {
	res   policy.Resolution
	rules Rules
}

// candidatesIn returns the candidates of namespace ns. The namespace's labels do not change
// while the Resolver lives: it is built for one computation.
func (r *resolver) candidatesIn(ns string) *candidates {
	if c, ok := r.inNamespace[ns]; ok {
		return c
	}
	c := &candidates{quotas: []*policy.Quota{}}
	for _, q := range r.quotas {
		if !q.TargetsNamespace(ns, r.labels.Namespaces[ns]) {
			continue
		}
		c.quotas = append(c.quotas, q)
		c.byPodName = c.byPodName || q.PodNames.Len() > 0
		c.byPodLabels = c.byPodLabels || q.PodSelector != nil
		c.byContainer = c.byContainer || q.ContainerNames.Len() > 0
	}
	for _, ref := range r.labels.Unparsed {
		// A namespaced quota targets its namespace alone; what a cluster quota selects is
		// not known.
		if ref.Kind == policy.KindClusterQuota || ref.Namespace == ns {
			c.unparsed = HeldByUnparsed(ref)
			break
		}
	}
	r.inNamespace[ns] = c
	return c
}

// mightSelect says whether a candidate that selects pods by label might target the
// archive, whose pod's labels are not known.
func (c *candidates) mightSelect(s policy.Subject) bool {
	if !c.byPodLabels {
		return false
	}
	for _, q := range c.quotas {
		if q.PodSelector != nil && q.MightTarget(s) {
			return true
		}
	}
	return false
}

func (c *candidates) key(s policy.Subject) subjectKey {
	k := subjectKey{namespace: s.Namespace}
	if c.byPodName {
		k.pod = s.Pod
	}
	if c.byPodLabels {
		k.podKnown = s.PodLabels != nil
		k.podLabels = labels.Set(s.PodLabels).String()
	}
	if c.byContainer {
		k.container = s.Container
	}
	return k
}

// resolve returns the rules in force for the archive's container and records, on its
// first sight of each distinct subject, which quotas target it and what conflicts.
func (r *resolver) resolve(a *Archive, out *Governance) *Rules {
	s := policy.Subject{Namespace: a.Namespace, NamespaceLabels: r.labels.Namespaces[a.Namespace],
		Pod: a.Pod, Container: a.Container}
	if r.labels.Pod != nil {
		s.PodLabels = r.labels.Pod(a)
	}
	cands := r.candidatesIn(a.Namespace)
	key := cands.key(s)
	if done, ok := r.resolved[key]; ok {
		r.conflicts(done.res, a, out)
		return &done.rules
	}
	res := policy.Resolve(cands.quotas, s)
	done := &resolution{res: res, rules: r.rulesOf(res)}
	switch {
	case cands.unparsed != "":
		done.rules.Held = cands.unparsed
	case s.PodLabels == nil && cands.mightSelect(s):
		done.rules.Held = HeldByLabels
	}
	r.resolved[key] = done
	// Effective reads whether a limit governs some or none of the subjects a quota
	// targets: once per distinct subject tells it.
	for _, q := range res.Targeting {
		i := r.index[q.Ref]
		out.targeted[i] = append(out.targeted[i], res)
	}
	r.conflicts(res, a, out)
	return &done.rules
}

// conflicts records the conflicts of a resolution for the archive's pod.
func (r *resolver) conflicts(res policy.Resolution, a *Archive, out *Governance) {
	for _, c := range res.Conflicts {
		pod := a.Namespace + "/" + a.Pod
		r.conflict(out, c.Winner, Conflict{Key: c.Key, Other: c.Loser, Pod: pod, Won: true})
		r.conflict(out, c.Loser, Conflict{Key: c.Key, Other: c.Winner, Pod: pod})
	}
}

// rulesOf turns a resolution into the rules Compute applies. Archives that resolve alike
// share them: Compute only reads them.
func (r *resolver) rulesOf(res policy.Resolution) Rules {
	var rules Rules
	for _, k := range policy.PrecedenceKeys {
		q, ceiling := res.Governing[k], res.Ceilings[k]
		if q == nil {
			continue
		}
		switch k {
		case policy.MaxCheckpointSize, policy.MaxAge:
			// One rule per archive: the ceiling where it binds, or where the quota under it
			// only previews (DryRun) and the ceiling enforces.
			if ceiling != nil && (res.Capped(k) || (q.Enforcement == cqv1.EnforcementDryRun && ceiling.Enforcement != cqv1.EnforcementDryRun)) {
				q = ceiling
			}
			qi := r.index[q.Ref]
			if k == policy.MaxAge {
				rules.MaxAge = &Retention{Quota: qi, Duration: *q.MaxAge}
				if name := q.Limit(k).Name; name != policy.NameMaxAge {
					rules.MaxAge.Rule = name // a remote twin's
				}
			} else {
				rules.MaxSize = &Retention{Quota: qi, Value: q.Limit(k).Value}
			}
		case policy.Orphans:
			if q.Orphans.Policy == cqv1.OrphanDelete {
				rules.Orphans = &Retention{Quota: r.index[q.Ref], Duration: q.Orphans.GracePeriod}
			}
		default:
			rules.Bounds = append(rules.Bounds, r.limit(r.index[q.Ref], k))
			// The ceiling holds alongside: pruning brings both under, so the smaller binds.
			if ceiling != nil {
				rules.Bounds = append(rules.Bounds, r.limit(r.index[ceiling.Ref], k))
			}
		}
	}
	for _, q := range res.Groups {
		for _, k := range []policy.Key{policy.GroupCheckpoints, policy.GroupStorage} {
			if q.Sets(k) {
				rules.Bounds = append(rules.Bounds, r.limit(r.index[q.Ref], k))
			}
		}
	}
	return rules
}

var levels = map[policy.Key]Per{
	policy.NamespaceCheckpoints: PerNamespace, policy.NamespaceStorage: PerNamespace,
	policy.PodCheckpoints: PerPod, policy.PodStorage: PerPod,
	policy.ContainerCheckpoints: PerContainer, policy.ContainerStorage: PerContainer,
	policy.GroupCheckpoints: PerGroup, policy.GroupStorage: PerGroup,
}

func (r *resolver) limit(qi int, k policy.Key) Bound {
	return Bound{Quota: qi, Per: levels[k], Limit: r.quotas[qi].Limit(k)}
}

type conflictKey struct {
	key   policy.Key
	other policy.Ref
}

func (r *resolver) conflict(out *Governance, ref policy.Ref, c Conflict) {
	qi, ok := r.index[ref]
	if !ok {
		return
	}
	if r.seen[qi] == nil {
		r.seen[qi] = map[conflictKey]bool{}
	}
	ck := conflictKey{c.Key, c.Other}
	if r.seen[qi][ck] || len(out.conflicts[qi]) >= MaxConflicts {
		return
	}
	r.seen[qi][ck] = true
	out.conflicts[qi] = append(out.conflicts[qi], c)
}

// Conflicts are the run-time conflicts of quota qi, sorted.
func (r *Governance) Conflicts(qi int) []Conflict {
	out := append([]Conflict(nil), r.conflicts[qi]...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Key != out[j].Key {
			return out[i].Key < out[j].Key
		}
		return out[i].Other.String() < out[j].Other.String()
	})
	return out
}

// Effective reports which of quota qi's limits are in force for the archives resolved.
func (r *Governance) Effective(qi int) []policy.LimitReport {
	return policy.Effective(r.quotas[qi], r.targeted[qi])
}
