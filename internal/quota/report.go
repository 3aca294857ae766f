package quota

import (
	"math"
	"sort"

	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// report fills each quota's usage: its limits in force with the scope nearest each, and
// the namespaces, pods and containers nearest their limits.
func (lg *ledger) report(res *Result) {
	in := lg.in
	type limitKey struct {
		quota int
		key   string
	}
	limits := map[limitKey]*LimitUsage{}
	var order []limitKey
	// fill[quota][level][scope] is the largest used/hard among the quota's limits there.
	fill := make([][3]map[string]float64, len(in.Quotas))
	for _, grp := range lg.groups {
		l := grp.limit
		k := limitKey{l.Quota, l.Name}
		lu := limits[k]
		if lu == nil {
			lu = &LimitUsage{Name: l.Name, Per: l.Per, Resource: l.Resource, Hard: l.Value, Used: -1}
			limits[k] = lu
			order = append(order, k)
		}
		nearer(lu, LimitUsage{Used: grp.used, Scope: grp.scope})
		if l.Per == PerGroup {
			continue
		}
		f := ratio(grp.used, l.Value)
		m := fill[l.Quota][l.Per]
		if m == nil {
			m = map[string]float64{}
			fill[l.Quota][l.Per] = m
		}
		if f > m[grp.scope] {
			m[grp.scope] = f
		}
	}
	sort.Slice(order, func(i, j int) bool {
		if order[i].quota != order[j].quota {
			return order[i].quota < order[j].quota
		}
		return order[i].key < order[j].key
	})
	for _, k := range order {
		res.Quotas[k.quota].Limits = append(res.Quotas[k.quota].Limits, *limits[k])
	}

	// Usage counts per container (subject), then per quota: all the archives of a subject
	// count under the same quotas.
	count, bytes := make([]int64, len(lg.subjects)), make([]int64, len(lg.subjects))
	first := make([]int, len(lg.subjects)) // an archive of the subject, for its names
	for _, i := range lg.order {
		s := lg.subjOf[i]
		a := &in.Archives[i]
		if count[s] == 0 {
			first[s] = i
		}
		count[s]++
		bytes[s] += a.Size
		if r := &lg.subjects[s].rules; r.MaxSize != nil {
			qr := &res.Quotas[r.MaxSize.Quota]
			if qr.MaxSize == nil {
				qr.MaxSize = &LimitUsage{Name: policy.NameMaxCheckpointSize, Per: PerContainer, Resource: policy.ResourceStorage, Hard: r.MaxSize.Value, Used: -1}
			}
			nearer(qr.MaxSize, LimitUsage{Used: a.Size, Scope: lg.subjects[s].scopes[PerContainer]})
		}
	}
	scopes := make([][3]map[string]*ScopeUsage, len(in.Quotas))
	seen := make([]int, len(in.Quotas)) // last subject counted per quota, +1
	for s := range lg.subjects {
		sub := &lg.subjects[s]
		if count[s] == 0 {
			continue
		}
		a := &in.Archives[first[s]]
		add := func(q int) {
			if seen[q] == s+1 {
				return
			}
			seen[q] = s + 1
			qr := &res.Quotas[q]
			qr.Checkpoints += count[s]
			qr.Bytes += bytes[s]
			for lvl := PerContainer; lvl <= PerNamespace; lvl++ {
				m := scopes[q][lvl]
				if m == nil {
					m = map[string]*ScopeUsage{}
					scopes[q][lvl] = m
				}
				key := sub.scopes[lvl]
				su := m[key]
				if su == nil {
					su = &ScopeUsage{Namespace: a.Namespace, Fill: fill[q][lvl][key]}
					if lvl <= PerPod {
						su.Pod = a.Pod
					}
					if lvl == PerContainer {
						su.Container = a.Container
					}
					m[key] = su
				}
				su.Checkpoints += count[s]
				su.Bytes += bytes[s]
			}
		}
		r := &sub.rules
		for _, l := range r.Bounds {
			add(l.Quota)
		}
		for _, ret := range []*Retention{r.MaxSize, r.MaxAge, r.Orphans} {
			if ret != nil {
				add(ret.Quota)
			}
		}
	}
	for q := range res.Quotas {
		qr := &res.Quotas[q]
		qr.Containers = nearest(scopes[q][PerContainer])
		qr.Pods = nearest(scopes[q][PerPod])
		qr.Namespaces = nearest(scopes[q][PerNamespace])
	}
}

// ratio is how full a scope is; a limit of 0 with anything in it is infinitely full.
func ratio(used, hard int64) float64 {
	if hard <= 0 {
		if used > 0 {
			return math.Inf(1)
		}
		return 0
	}
	return float64(used) / float64(hard)
}

// nearest returns the scopes nearest their limits first, then the largest, at most MaxScopes.
func nearest(m map[string]*ScopeUsage) []ScopeUsage {
	if len(m) == 0 {
		return nil
	}
	out := make([]ScopeUsage, 0, len(m))
	for _, su := range m {
		out = append(out, *su)
	}
	return nearestOf(out)
}

// nearestOf sorts scopes nearest their limits first, then the largest, and keeps at most
// MaxScopes; the order is total, so scopes sorted apart and joined sort alike.
func nearestOf(out []ScopeUsage) []ScopeUsage {
	if len(out) == 0 {
		return nil
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		if a.Fill != b.Fill {
			return a.Fill > b.Fill
		}
		if a.Checkpoints != b.Checkpoints {
			return a.Checkpoints > b.Checkpoints
		}
		if a.Bytes != b.Bytes {
			return a.Bytes > b.Bytes
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Pod != b.Pod {
			return a.Pod < b.Pod
		}
		return a.Container < b.Container
	})
	if len(out) > MaxScopes {
		out = out[:MaxScopes]
	}
	return out
}
