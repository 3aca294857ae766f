package quota

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// subject is the archives of one container: they share their rules and the scopes they
// count in.
type subject struct {
	of     subjectOf
	rules  Rules
	groups []int
	// scopes are the container, pod and namespace scope names, by Level.
	scopes [3]string
}

// group is one limit of one quota over one scope, and the archives it counts, oldest first.
type group struct {
	limit   Bound
	scope   string
	used    int64
	members []int
}

// subjectOf tells subjects apart: the same rules over the same container.
type subjectOf struct {
	rules                     *Rules
	namespace, pod, container string
}

// holds says whether the archive is of the subject's container.
func (s *subject) holds(a *Archive) bool {
	return s.of.namespace == a.Namespace && s.of.pod == a.Pod && s.of.container == a.Container
}

type groupKey struct {
	quota int
	key   string
	scope string
}

// ledger is the part of a computation that does not depend on which quotas enforce: the
// archives in order, and the usage of every scope under every limit.
type ledger struct {
	in       *Input
	order    []int // archive indices, oldest first
	subjOf   []int // archive index -> subject
	subjects []subject
	groups   []group
	byLevel  []int // group indices, narrowest level first
}

// Compute works out usage, the archives to prune and what each quota reports.
func Compute(in Input) Result {
	lg := build(&in)
	active := make([]bool, len(in.Quotas))
	dryRun := false
	for i, q := range in.Quotas {
		active[i] = !q.DryRun
		dryRun = dryRun || q.DryRun
	}
	res := Result{Quotas: make([]Outcome, len(in.Quotas))}
	marks, blocks := lg.prune(active)
	for _, i := range lg.order {
		if p := marks[i]; p != nil {
			res.Prune = append(res.Prune, *p)
			res.Quotas[p.Quota].Pending = append(res.Quotas[p.Quota].Pending, *p)
		}
	}
	for _, b := range blocks {
		if active[b.quota] {
			res.Quotas[b.quota].Blocked = append(res.Quotas[b.quota].Blocked, b.Block)
		}
	}
	// A DryRun quota reports what switching it to Enforce would add to what is pruned
	// anyway: the same set that Enforce then deletes.
	if dryRun {
		for q, info := range in.Quotas {
			if !info.DryRun {
				continue
			}
			with := append([]bool(nil), active...)
			with[q] = true
			m, bl := lg.prune(with)
			for _, i := range lg.order {
				if m[i] != nil && marks[i] == nil {
					res.Quotas[q].Pending = append(res.Quotas[q].Pending, *m[i])
				}
			}
			for _, b := range bl {
				if b.quota == q {
					res.Quotas[q].Blocked = append(res.Quotas[q].Blocked, b.Block)
				}
			}
		}
	}
	for q := range res.Quotas {
		sortBlocks(res.Quotas[q].Blocked)
	}
	lg.report(&res)
	res.NextExpiry = lg.nextExpiry()
	return res
}

func build(in *Input) *ledger {
	lg := &ledger{in: in, order: make([]int, len(in.Archives)), subjOf: make([]int, len(in.Archives))}
	for i := range lg.order {
		lg.order[i] = i
	}
	// Older is a total order (names are unique in a namespace), so an unstable sort is deterministic.
	keys := make([]timeKey, len(in.Archives))
	for i := range keys {
		keys[i] = timeKeyOf(in.Archives[i].CheckpointTime)
	}
	slices.SortFunc(lg.order, func(x, y int) int { return compareKeyed(&in.Archives[x], &in.Archives[y], keys[x], keys[y]) })

	// Govern gives each container its own Rules, so the pointer names the container; the
	// scopes are checked all the same, and rules shared across containers still work.
	subjects := map[subjectOf]int{}
	byRules := map[*Rules]int{}
	groups := map[groupKey]int{}
	for i := range in.Archives {
		a := &in.Archives[i]
		s, ok := byRules[in.Rules[i]]
		if ok && !lg.subjects[s].holds(a) {
			s, ok = subjects[subjectOf{in.Rules[i], a.Namespace, a.Pod, a.Container}]
		}
		if !ok {
			s = len(lg.subjects)
			of := subjectOf{in.Rules[i], a.Namespace, a.Pod, a.Container}
			subjects[of] = s
			byRules[in.Rules[i]] = s
			sub := subject{of: of, rules: *in.Rules[i]}
			for lvl := PerContainer; lvl <= PerNamespace; lvl++ {
				sub.scopes[lvl] = a.Scope(lvl)
			}
			for _, l := range sub.rules.Bounds {
				gk := groupKey{quota: l.Quota, key: l.Name}
				if l.Per != PerGroup {
					gk.scope = sub.scopes[l.Per]
				}
				g, ok := groups[gk]
				if !ok {
					g = len(lg.groups)
					groups[gk] = g
					lg.groups = append(lg.groups, group{limit: l, scope: gk.scope})
				}
				sub.groups = append(sub.groups, g)
			}
			lg.subjects = append(lg.subjects, sub)
		}
		lg.subjOf[i] = s
	}
	for _, i := range lg.order {
		a := &in.Archives[i]
		for _, g := range lg.subjects[lg.subjOf[i]].groups {
			grp := &lg.groups[g]
			grp.used += amount(a, grp.limit.Resource)
			grp.members = append(grp.members, i)
		}
	}
	// Narrow scopes first: pruning a container down to its limit often brings its pod
	// and namespace under theirs too, and never prunes more than they need.
	lg.byLevel = make([]int, len(lg.groups))
	for g := range lg.byLevel {
		lg.byLevel[g] = g
	}
	sort.SliceStable(lg.byLevel, func(x, y int) bool {
		return lg.groups[lg.byLevel[x]].limit.Per < lg.groups[lg.byLevel[y]].limit.Per
	})
	return lg
}

func amount(a *Archive, r policy.Resource) int64 {
	if r == policy.ResourceStorage {
		return a.Size
	}
	return 1
}

type quotaBlock struct {
	quota int
	Block
}

// prune marks, oldest first, the archives that the active quotas' rules delete: first
// the retention rules, then every limit over its scope until it holds.
func (lg *ledger) prune(active []bool) ([]*Prune, []quotaBlock) {
	in := lg.in
	marks := make([]*Prune, len(in.Archives))
	left := make([]int64, len(lg.groups))
	for g := range lg.groups {
		left[g] = lg.groups[g].used
	}
	// An archive being deleted counts in usage until its file is gone, but pruning treats
	// it as gone already: it was pruned (or deleted) once, and counting it against the
	// limit again would prune a newer archive in its place.
	for i := range in.Archives {
		if a := &in.Archives[i]; a.Deleting {
			for _, g := range lg.subjects[lg.subjOf[i]].groups {
				left[g] -= amount(a, lg.groups[g].limit.Resource)
			}
		}
	}
	mark := func(i int, p *Prune) {
		marks[i] = p
		a := &in.Archives[i]
		for _, g := range lg.subjects[lg.subjOf[i]].groups {
			left[g] -= amount(a, lg.groups[g].limit.Resource)
		}
	}
	for _, i := range lg.order {
		a := &in.Archives[i]
		r := &lg.subjects[lg.subjOf[i]].rules
		if !prunable(a) || r.Held != "" {
			continue
		}
		scope := lg.subjects[lg.subjOf[i]].scopes[PerContainer]
		switch {
		case r.MaxSize != nil && active[r.MaxSize.Quota] && a.Size > r.MaxSize.Value:
			mark(i, &Prune{Archive: i, Quota: r.MaxSize.Quota, Rule: policy.NameMaxCheckpointSize, Scope: scope,
				Reason: fmt.Sprintf("maxCheckpointSize %s/%s", Bytes(a.Size), Bytes(r.MaxSize.Value))})
		// An archive of unknown age (no checkpoint time) has no age for maxAge to measure.
		case r.MaxAge != nil && active[r.MaxAge.Quota] && !a.CheckpointTime.IsZero() &&
			!in.Now.Before(a.CheckpointTime.Add(r.MaxAge.Duration)):
			age := in.Now.Sub(a.CheckpointTime).Round(time.Second)
			// The rule's name is a constant in the format where it can be: one argument
			// fewer is one allocation fewer per archive that maxAge prunes.
			var reason string
			if r.MaxAge.Rule == "" {
				reason = fmt.Sprintf("maxAge %s/%s", age, r.MaxAge.Duration)
			} else {
				reason = fmt.Sprintf("%s %s/%s", r.MaxAge.Rule, age, r.MaxAge.Duration)
			}
			mark(i, &Prune{Archive: i, Quota: r.MaxAge.Quota, Rule: cmp.Or(r.MaxAge.Rule, policy.NameMaxAge), Scope: scope, Reason: reason})
		case r.Orphans != nil && active[r.Orphans.Quota] && !a.OrphanSince.IsZero() &&
			!in.Now.Before(a.OrphanSince.Add(r.Orphans.Duration)):
			mark(i, &Prune{Archive: i, Quota: r.Orphans.Quota, Rule: policy.NameOrphans, Scope: scope,
				Reason: fmt.Sprintf("orphans: pod %s gone for %s", a.Pod, in.Now.Sub(a.OrphanSince).Round(time.Second))})
		}
	}
	var blocks []quotaBlock
	for _, g := range lg.byLevel {
		grp := &lg.groups[g]
		l := grp.limit
		if !active[l.Quota] || left[g] <= l.Value {
			continue
		}
		reason := fmt.Sprintf("%s %s/%s", l.Name, format(grp.used, l.Resource), format(l.Value, l.Resource))
		var pinned, held []string
		heldBecause := ""
		// A held archive might be the next to go under this limit, were its rules known:
		// nothing newer goes before it.
		afterHeld := false
		for _, i := range grp.members {
			if left[g] <= l.Value {
				break
			}
			if marks[i] != nil {
				continue
			}
			a := &in.Archives[i]
			switch {
			case a.Deleting:
				continue
			case !prunable(a):
				if len(pinned) < MaxNames {
					pinned = append(pinned, a.Name)
				}
				continue
			case lg.subjects[lg.subjOf[i]].rules.Held != "":
				if len(held) < MaxNames {
					held = append(held, a.Name)
				}
				heldBecause = cmp.Or(heldBecause, lg.subjects[lg.subjOf[i]].rules.Held)
				afterHeld = true
				continue
			case afterHeld:
				continue
			}
			mark(i, &Prune{Archive: i, Quota: l.Quota, Rule: l.Name, Scope: grp.scope, Reason: reason})
		}
		if left[g] > l.Value {
			blocks = append(blocks, quotaBlock{quota: l.Quota, Block: Block{Rule: l.Name, Per: l.Per, Scope: grp.scope,
				Used: left[g], Hard: l.Value, Pinned: pinned, Held: held, HeldBecause: heldBecause}})
		}
	}
	return marks, blocks
}

func prunable(a *Archive) bool { return !a.Pinned && !a.Unreadable && !a.Deleting }

// nextExpiry is the earliest future moment when a retention rule starts to apply.
func (lg *ledger) nextExpiry() time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if t.After(lg.in.Now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for i := range lg.in.Archives {
		a := &lg.in.Archives[i]
		r := &lg.subjects[lg.subjOf[i]].rules
		if r.MaxAge != nil {
			consider(a.CheckpointTime.Add(r.MaxAge.Duration))
		}
		if r.Orphans != nil && !a.OrphanSince.IsZero() {
			consider(a.OrphanSince.Add(r.Orphans.Duration))
		}
	}
	return next
}
