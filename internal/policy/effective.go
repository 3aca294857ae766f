package policy

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// LimitReport says whether one limit of a quota is in force, and which quotas override it
// or which it overrides.
type LimitReport struct {
	// Limit is the quota's own, shared: a pass keeps a report of every limit of every
	// quota, and a copy of each was a fifth of the manager's memory per quota.
	Limit *Limit
	// others is nil for a limit that no other quota overrides, is overridden by or caps,
	// as most are: the three lists took 48 bytes of each report, 430 of a maximal quota's
	// view (issue 29).
	others *others
	// state is the report's State, as its place in limitStates: a byte, where the
	// state's string took 16 of the report's 32 bytes (24 now; a maximal quota's eight
	// reports 256 -> 192 bytes in every view, issue 29).
	state uint8
}

// limitStates are the states a report can be in, the zero state first.
var limitStates = [...]cqv1.LimitState{"", cqv1.LimitInForce, cqv1.LimitCapped, cqv1.LimitPartlyOverridden, cqv1.LimitOverridden}

// State says whether the limit is in force, capped or overridden.
func (r LimitReport) State() cqv1.LimitState { return limitStates[r.state] }

// setState sets the report's state; st is one of the four states of the API.
func (r *LimitReport) setState(st cqv1.LimitState) {
	i := slices.Index(limitStates[:], st)
	if i < 0 {
		panic(fmt.Sprintf("policy: a limit report in the state %q, which is none of the API's", st))
	}
	r.state = uint8(i)
}

type others struct {
	overriddenBy, overrides []Ref
	cap                     *Cap
}

// OverriddenBy are more specific quotas that govern some (or all) of the archives.
func (r LimitReport) OverriddenBy() []Ref {
	if r.others == nil {
		return nil
	}
	return r.others.overriddenBy
}

// Overrides are less specific quotas that set the same limit for some of the archives.
func (r LimitReport) Overrides() []Ref {
	if r.others == nil {
		return nil
	}
	return r.others.overrides
}

// Cap is set when a cluster quota's smaller limit binds instead of this one, for some or
// all of the archives: the strictest such ceiling.
func (r LimitReport) Cap() *Cap {
	if r.others == nil {
		return nil
	}
	return r.others.cap
}

// NewLimitReport is the report of limit l in state st with the quotas it stands with (none
// may be given), for reports not computed here, such as the ones tests give the warnings.
func NewLimitReport(l *Limit, st cqv1.LimitState, overriddenBy, overrides []Ref, c *Cap) LimitReport {
	r := LimitReport{Limit: l}
	r.setState(st)
	if len(overriddenBy) > 0 || len(overrides) > 0 || c != nil {
		r.others = &others{overriddenBy: overriddenBy, overrides: overrides, cap: c}
	}
	return r
}

// more is the report's others, made when it has none.
func (r *LimitReport) more() *others {
	if r.others == nil {
		r.others = &others{}
	}
	return r.others
}

// Cap is a cluster quota whose limit caps a namespaced quota's.
type Cap struct {
	By    Ref
	Limit *Limit
}

// capBy records c as a ceiling below the limit, keeping the strictest.
func (r *LimitReport) capBy(k Key, c *Quota) {
	// Every key with a ceiling orders its values by Limit.Value, the smaller the stricter.
	if v, was := c.Limit(k).Value, r.Cap(); was == nil || v < was.Limit.Value || (v == was.Limit.Value && c.Ref.String() < was.By.String()) {
		r.more().cap = &Cap{By: c.Ref, Limit: c.limitRef(k)}
	}
	if r.State() == cqv1.LimitInForce {
		r.setState(cqv1.LimitCapped)
	}
}

// API converts the report into the status type.
func (r LimitReport) API() cqv1.EffectiveLimit {
	e := cqv1.EffectiveLimit{Limit: r.Limit.Name, Value: r.Limit.Written, State: r.State()}
	for _, ref := range r.OverriddenBy() {
		e.OverriddenBy = append(e.OverriddenBy, ref.String())
	}
	if c := r.Cap(); c != nil {
		e.CappedBy, e.CappedAt = c.By.String(), c.Limit.Written
	}
	return e
}

// APILimits converts reports into status.effectivePolicy.
func APILimits(reports []LimitReport) []cqv1.EffectiveLimit {
	out := make([]cqv1.EffectiveLimit, 0, len(reports))
	for _, r := range reports {
		out = append(out, r.API())
	}
	return out
}

// Describe reports each limit of q from the quotas alone, as the webhook sees them before
// any archive exists: a more specific quota of the same kind that may share archives
// overrides the limit partly, or wholly when it covers every archive q targets; for a
// namespaced quota, a cluster quota that may share archives and sets a smaller value caps
// it (the most specific such cluster quota, as Resolve picks the ceiling). nsLabels holds
// the labels of the namespaces known to the caller, to tell whether a cluster quota
// selects the namespace of a namespaced one; an unknown namespace is assumed selected.
func Describe(q *Quota, others []*Quota, nsLabels map[string]map[string]string) []LimitReport {
	keys := q.Keys()
	out := make([]LimitReport, 0, len(keys))
	for _, k := range keys {
		r := q.report(k)
		if !k.IsGroup() {
			var ceilings []*Quota
			for _, o := range sortedRefs(others) {
				if o.Ref == q.Ref || !o.Sets(k) || !mayOverlap(q, o, nsLabels) {
					continue
				}
				if o.Ref.Kind != q.Ref.Kind && k.HasCeiling() {
					// A cluster quota bounds a namespaced one; a namespaced one never
					// overrides a cluster quota's ceiling.
					if q.Ref.Kind == KindQuota {
						ceilings = append(ceilings, o)
					}
					continue
				}
				switch {
				case o.Specificity > q.Specificity:
					r.more().overriddenBy = append(r.OverriddenBy(), o.Ref)
					r.setState(worse(r.State(), cqv1.LimitPartlyOverridden))
					if covers(o, q) {
						r.setState(cqv1.LimitOverridden)
					}
				case o.Specificity < q.Specificity:
					r.more().overrides = append(r.Overrides(), o.Ref)
				}
			}
			if c := mostSpecific(k, ceilings); c != nil && Stricter(k, c, q) {
				r.capBy(k, c)
			}
		}
		out = append(out, r)
	}
	return out
}

// mostSpecific is the quota of qs that precedence would pick for k: the most specific, the
// stricter of equally specific ones.
func mostSpecific(k Key, qs []*Quota) *Quota {
	var best *Quota
	for _, q := range qs {
		if best == nil || q.Specificity > best.Specificity || (q.Specificity == best.Specificity && Stricter(k, q, best)) {
			best = q
		}
	}
	return best
}

// Effective reports each limit of q from the resolutions of the archives q targets (one
// per archive, from Resolve): a limit that governs none of them is Overridden, some of
// them PartlyOverridden; one that a cluster quota's ceiling binds below is Capped (and a
// cluster quota's limit that is a ceiling is in force). With no archive, each limit is InForce.
func Effective(q *Quota, resolutions []Resolution) []LimitReport {
	keys := q.Keys()
	out := make([]LimitReport, 0, len(keys))
	for _, k := range keys {
		r := q.report(k)
		if !k.IsGroup() {
			governed, overridden := 0, map[Ref]bool{}
			for i := range resolutions {
				res := &resolutions[i]
				g := res.Governing[k]
				switch {
				case g == nil || g.Ref == q.Ref:
					governed++
					if res.Capped(k) {
						r.capBy(k, res.Ceilings[k])
					}
				case res.Ceilings[k] != nil && res.Ceilings[k].Ref == q.Ref:
					governed++
				default:
					overridden[g.Ref] = true
				}
			}
			if len(overridden) > 0 {
				by := slices.SortedFunc(maps.Keys(overridden), func(a, b Ref) int { return strings.Compare(a.String(), b.String()) })
				r.more().overriddenBy = by
			}
			switch {
			case len(overridden) == 0:
			case governed == 0:
				r.setState(cqv1.LimitOverridden)
			default:
				r.setState(cqv1.LimitPartlyOverridden)
			}
		}
		out = append(out, r)
	}
	return out
}

func (q *Quota) report(k Key) LimitReport {
	r := LimitReport{Limit: q.limitRef(k)}
	r.setState(cqv1.LimitInForce)
	return r
}

func worse(a, b cqv1.LimitState) cqv1.LimitState {
	order := map[cqv1.LimitState]int{cqv1.LimitInForce: 0, cqv1.LimitCapped: 0, cqv1.LimitPartlyOverridden: 1, cqv1.LimitOverridden: 2}
	if order[b] > order[a] {
		return b
	}
	return a
}

func sortedRefs(qs []*Quota) []*Quota {
	s := slices.Clone(qs)
	slices.SortFunc(s, func(a, b *Quota) int { return strings.Compare(a.Ref.String(), b.Ref.String()) })
	return s
}
