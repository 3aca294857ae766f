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

// Resolver asks internal/policy which quota governs each limit of an archive and turns
// the answer into Rules; it remembers what each quota needs for its report.
type Resolver struct {
	quotas []*policy.Quota
	index  map[policy.Ref]int
	// inNamespace are the quotas that can target each namespace's archives: an archive is
	// resolved against those few, not every quota.
	inNamespace map[string]*candidates
	// resolved remembers the resolution of each distinct subject (see subjectKey).
	resolved map[subjectKey]*resolution
	// NamespaceLabels are the labels of each namespace.
	NamespaceLabels map[string]map[string]string
	// PodLabels returns the labels of the archive's pod, nil when that pod (with that UID)
	// is not known.
	PodLabels func(a *Archive) map[string]string

	targeted  [][]policy.Resolution
	conflicts [][]Conflict
	seen      []map[conflictKey]bool
}

type conflictKey struct {
	key   policy.Key
	other policy.Ref
}

// NewResolver resolves against quotas.
func NewResolver(quotas []*policy.Quota) *Resolver {
	r := &Resolver{quotas: quotas, index: map[policy.Ref]int{},
		inNamespace: map[string]*candidates{}, resolved: map[subjectKey]*resolution{},
		targeted: make([][]policy.Resolution, len(quotas)), conflicts: make([][]Conflict, len(quotas)),
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
func (r *Resolver) candidatesIn(ns string) *candidates {
	if c, ok := r.inNamespace[ns]; ok {
		return c
	}
	c := &candidates{quotas: []*policy.Quota{}}
	for _, q := range r.quotas {
		if !q.TargetsNamespace(ns, r.NamespaceLabels[ns]) {
			continue
		}
		c.quotas = append(c.quotas, q)
		c.byPodName = c.byPodName || q.PodNames.Len() > 0
		c.byPodLabels = c.byPodLabels || q.PodSelector != nil
		c.byContainer = c.byContainer || q.ContainerNames.Len() > 0
	}
	r.inNamespace[ns] = c
	return c
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

// Infos describes the quotas for Input.Quotas, in the same order.
func (r *Resolver) Infos() []Meta {
	out := make([]Meta, len(r.quotas))
	for i, q := range r.quotas {
		out[i] = Meta{Name: q.Ref.String(), DryRun: q.Enforcement == cqv1.EnforcementDryRun}
	}
	return out
}

// Rules resolves the archive's container and returns the rules in force; use it as Input.Rules.
func (r *Resolver) Rules(a *Archive) Rules {
	s := policy.Subject{Namespace: a.Namespace, NamespaceLabels: r.NamespaceLabels[a.Namespace],
		Pod: a.Pod, Container: a.Container}
	if r.PodLabels != nil {
		s.PodLabels = r.PodLabels(a)
	}
	cands := r.candidatesIn(a.Namespace)
	key := cands.key(s)
	done, ok := r.resolved[key]
	if !ok {
		res := policy.Resolve(cands.quotas, s)
		done = &resolution{res: res, rules: r.rulesOf(res)}
		r.resolved[key] = done
	}
	res := done.res
	for _, q := range res.Targeting {
		i := r.index[q.Ref]
		r.targeted[i] = append(r.targeted[i], res)
	}
	for _, c := range res.Conflicts {
		r.conflict(c.Winner, Conflict{Key: c.Key, Other: c.Loser, Pod: a.Namespace + "/" + a.Pod, Won: true})
		r.conflict(c.Loser, Conflict{Key: c.Key, Other: c.Winner, Pod: a.Namespace + "/" + a.Pod})
	}
	return done.rules
}

// rulesOf turns a resolution into the rules Compute applies. Archives that resolve alike
// share them: Compute only reads them.
func (r *Resolver) rulesOf(res policy.Resolution) Rules {
	var rules Rules
	for _, k := range policy.PrecedenceKeys {
		q := res.Governing[k]
		if q == nil {
			continue
		}
		qi := r.index[q.Ref]
		switch k {
		case policy.MaxCheckpointSize:
			rules.MaxSize = &Retention{Quota: qi, Value: q.Limits[k]}
		case policy.MaxAge:
			rules.MaxAge = &Retention{Quota: qi, Duration: *q.MaxAge}
		case policy.Orphans:
			if q.Orphans.Policy == cqv1.OrphanDelete {
				rules.Orphans = &Retention{Quota: qi, Duration: q.Orphans.GracePeriod}
			}
		default:
			rules.Limits = append(rules.Limits, r.limit(qi, k))
		}
	}
	for _, q := range res.Groups {
		for _, k := range []policy.Key{policy.GroupCheckpoints, policy.GroupStorage} {
			if q.Sets(k) {
				rules.Limits = append(rules.Limits, r.limit(r.index[q.Ref], k))
			}
		}
	}
	return rules
}

var levels = map[policy.Key]Level{
	policy.NamespaceCheckpoints: LevelNamespace, policy.NamespaceStorage: LevelNamespace,
	policy.PodCheckpoints: LevelPod, policy.PodStorage: LevelPod,
	policy.ContainerCheckpoints: LevelContainer, policy.ContainerStorage: LevelContainer,
	policy.GroupCheckpoints: LevelGroup, policy.GroupStorage: LevelGroup,
}

func (r *Resolver) limit(qi int, k policy.Key) Limit {
	l := r.quotas[qi].Limit(k)
	res := Checkpoints
	if l.Resource == policy.ResourceStorage {
		res = Storage
	}
	return Limit{Quota: qi, Key: l.Name, Level: levels[k], Resource: res, Value: l.Value}
}

func (r *Resolver) conflict(ref policy.Ref, c Conflict) {
	qi, ok := r.index[ref]
	if !ok {
		return
	}
	if r.seen[qi] == nil {
		r.seen[qi] = map[conflictKey]bool{}
	}
	ck := conflictKey{c.Key, c.Other}
	if r.seen[qi][ck] || len(r.conflicts[qi]) >= MaxConflicts {
		return
	}
	r.seen[qi][ck] = true
	r.conflicts[qi] = append(r.conflicts[qi], c)
}

// Conflicts are the run-time conflicts of quota qi found while resolving, sorted.
func (r *Resolver) Conflicts(qi int) []Conflict {
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
func (r *Resolver) Effective(qi int) []policy.LimitReport {
	return policy.Effective(r.quotas[qi], r.targeted[qi])
}
