package quota

import (
	"container/heap"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// Coupled says whether some limit of these quotas counts the archives of several
// namespaces together: a cluster quota's limits.total. Every other limit, and every
// retention rule, counts the archives of one namespace at most, so without such a limit
// each namespace can be resolved and computed apart from the others (Merge), and a change
// in one namespace needs only that namespace computed again.
func Coupled(quotas []*policy.Quota) bool {
	for _, q := range quotas {
		if q.Ref.Kind == policy.KindClusterQuota && (q.Sets(policy.GroupCheckpoints) || q.Sets(policy.GroupStorage)) {
			return true
		}
	}
	return false
}

// Part is the computation of the archives of one namespace, or of several that a limit
// couples, as ComputePart keeps it for Merge: the archives and their rules, what is pruned,
// and of each quota only what it has in the part. A pass keeps one part per namespace, so a
// part holds nothing per quota that governs none of its archives: the empty outcomes of
// every quota in every part were a cost of their own (docs/quota-controller.md).
type Part struct {
	archives []Archive
	rules    []*Rules
	prune    []Prune
	quotas   []partQuota
	// NextExpiry is the earliest time after the part's Now when one of its archives reaches
	// its maxAge or the end of its orphan grace period; zero when none will.
	NextExpiry time.Time
}

// partQuota is what one quota, Input.Quotas[index], has in a part.
type partQuota struct {
	index     int
	outcome   Outcome
	targeted  []policy.Resolution
	conflicts []Conflict
}

// ComputePart resolves quotas over archives that no limit shares with archives outside
// them (see Coupled), and computes them.
func ComputePart(in Input, res *Governance) *Part {
	out := Compute(in)
	p := &Part{archives: in.Archives, rules: in.Rules, prune: out.Prune, NextExpiry: out.NextExpiry}
	for qi := range out.Quotas {
		o := &out.Quotas[qi]
		empty := o.Checkpoints == 0 && len(o.Limits) == 0 && o.MaxSize == nil && len(o.Pending) == 0 && len(o.Blocked) == 0
		if empty && len(res.targeted[qi]) == 0 && len(res.conflicts[qi]) == 0 {
			continue
		}
		p.quotas = append(p.quotas, partQuota{index: qi, outcome: *o, targeted: res.targeted[qi], conflicts: res.conflicts[qi]})
	}
	return p
}

// Merge joins parts computed apart into what Compute gives for all their archives
// together: the archives one part after another, indices in the Result and the Rules
// shifted accordingly, each quota's outcome and report joined. Each quota is resolved by
// every part against the same quotas, in the same order. The archives are pointers into
// the parts, read only: a pass merges every part, and copying each archive into one list
// was much of what the manager allocated (docs/quota-controller.md).
func Merge(quotas []*policy.Quota, parts []*Part) ([]*Archive, *Governance, Result) {
	res := Govern(quotas, nil, Labels{})
	total := 0
	for _, p := range parts {
		total += len(p.archives)
	}
	archives := make([]*Archive, 0, total)
	rules := make([]*Rules, 0, total)
	out := Result{Quotas: make([]Outcome, len(quotas))}
	seen := make([]map[conflictKey]bool, len(quotas))
	// The lists of prunes, whole and per quota, are each sorted oldest first within a part:
	// they are merged, not sorted again.
	var prunes [][]Prune
	pending := make([][][]Prune, len(quotas))
	for _, p := range parts {
		off := len(archives)
		for i := range p.archives {
			archives = append(archives, &p.archives[i])
		}
		rules = append(rules, p.rules...)
		prunes = append(prunes, shifted(p.prune, off))
		for i := range p.quotas {
			pq := &p.quotas[i]
			qi := pq.index
			res.targeted[qi] = append(res.targeted[qi], pq.targeted...)
			for _, c := range pq.conflicts {
				if seen[qi] == nil {
					seen[qi] = map[conflictKey]bool{}
				}
				ck := conflictKey{c.Key, c.Other}
				if !seen[qi][ck] && len(res.conflicts[qi]) < MaxConflicts {
					seen[qi][ck] = true
					res.conflicts[qi] = append(res.conflicts[qi], c)
				}
			}
			joinOutcome(&out.Quotas[qi], &pq.outcome)
			pending[qi] = append(pending[qi], shifted(pq.outcome.Pending, off))
		}
		out.NextExpiry = earliest(out.NextExpiry, p.NextExpiry)
	}
	res.Rules = rules
	older := func(x, y Prune) int { return Compare(archives[x.Archive], archives[y.Archive]) }
	out.Prune = mergeSorted(prunes, older)
	for qi := range out.Quotas {
		o := &out.Quotas[qi]
		o.Pending = mergeSorted(pending[qi], older)
		sortBlocks(o.Blocked)
		sort.Slice(o.Limits, func(i, j int) bool { return o.Limits[i].Name < o.Limits[j].Name })
		o.Namespaces, o.Pods, o.Containers = nearestOf(o.Namespaces), nearestOf(o.Pods), nearestOf(o.Containers)
	}
	return archives, res, out
}

// shifted is a copy of prunes with their archive indices moved by off; nil when empty.
func shifted(prunes []Prune, off int) []Prune {
	if len(prunes) == 0 {
		return nil
	}
	out := make([]Prune, len(prunes))
	for i, p := range prunes {
		p.Archive += off
		out[i] = p
	}
	return out
}

// mergeSorted merges lists that are each sorted by cmp into one sorted list.
func mergeSorted(lists [][]Prune, cmp func(a, b Prune) int) []Prune {
	lists = slices.DeleteFunc(lists, func(l []Prune) bool { return len(l) == 0 })
	switch len(lists) {
	case 0:
		return nil
	case 1:
		return lists[0]
	}
	total := 0
	for _, l := range lists {
		total += len(l)
	}
	out := make([]Prune, 0, total)
	h := &pruneHeap{lists: lists, cmp: cmp}
	heap.Init(h)
	for h.Len() > 0 {
		l := h.lists[0]
		out = append(out, l[0])
		if len(l) == 1 {
			heap.Pop(h)
			continue
		}
		h.lists[0] = l[1:]
		heap.Fix(h, 0)
	}
	return out
}

// pruneHeap orders sorted lists by their first element.
type pruneHeap struct {
	lists [][]Prune
	cmp   func(a, b Prune) int
}

func (h *pruneHeap) Len() int           { return len(h.lists) }
func (h *pruneHeap) Less(i, j int) bool { return h.cmp(h.lists[i][0], h.lists[j][0]) < 0 }
func (h *pruneHeap) Swap(i, j int)      { h.lists[i], h.lists[j] = h.lists[j], h.lists[i] }
func (h *pruneHeap) Push(x any)         { h.lists = append(h.lists, x.([]Prune)) }
func (h *pruneHeap) Pop() any {
	l := h.lists[len(h.lists)-1]
	h.lists = h.lists[:len(h.lists)-1]
	return l
}

// joinOutcome adds a part's outcome of one quota to the joined one, but for Pending,
// which Merge merges; the lists are put in order once every part is in.
func joinOutcome(o, p *Outcome) {
	o.Checkpoints += p.Checkpoints
	o.Bytes += p.Bytes
	for _, l := range p.Limits {
		i := slices.IndexFunc(o.Limits, func(x LimitUsage) bool { return x.Name == l.Name })
		if i < 0 {
			o.Limits = append(o.Limits, l)
			continue
		}
		nearer(&o.Limits[i], l)
	}
	if p.MaxSize != nil {
		if o.MaxSize == nil {
			m := *p.MaxSize
			o.MaxSize = &m
		} else {
			nearer(o.MaxSize, *p.MaxSize)
		}
	}
	o.Blocked = append(o.Blocked, p.Blocked...)
	o.Namespaces = append(o.Namespaces, p.Namespaces...)
	o.Pods = append(o.Pods, p.Pods...)
	o.Containers = append(o.Containers, p.Containers...)
}

// nearer keeps in l the usage of the scope nearest the limit: the largest, then the scope
// whose name sorts first, as report chooses it.
func nearer(l *LimitUsage, other LimitUsage) {
	if other.Used > l.Used || (other.Used == l.Used && other.Scope < l.Scope) {
		l.Used, l.Scope = other.Used, other.Scope
	}
}

// sortBlocks orders blocked limits narrowest level first, then by scope and key.
func sortBlocks(b []Block) {
	slices.SortStableFunc(b, func(x, y Block) int {
		if x.Per != y.Per {
			return int(x.Per) - int(y.Per)
		}
		if c := strings.Compare(x.Scope, y.Scope); c != 0 {
			return c
		}
		return strings.Compare(x.Rule, y.Rule)
	})
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
