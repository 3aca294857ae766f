package controllers

import (
	"fmt"
	"slices"
	"strings"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// limitOrder is the order of status.usageTable, widest scope first as ResourceQuota lists
// its resources: the group limit, then each level, then the per-archive rules.
var limitOrder = func() []string {
	var out []string
	for _, lv := range []string{policy.LevelTotal, policy.LevelPerNamespace, policy.LevelPerNode, policy.LevelPerPod, policy.LevelPerContainer} {
		out = append(out, policy.LimitName(lv, policy.ResourceCheckpoints), policy.LimitName(lv, policy.ResourceStorage))
	}
	out = append(out, policy.NameMaxCheckpointSize, policy.NameMaxAge, policy.NameOrphans)
	for _, lv := range []string{policy.LevelTotal, policy.LevelPerNamespace, policy.LevelPerPod, policy.LevelPerContainer} {
		lv = policy.RemoteLevel(lv)
		out = append(out, policy.LimitName(lv, policy.ResourceCheckpoints), policy.LimitName(lv, policy.ResourceStorage))
	}
	return append(out, policy.NameRemoteMaxAge)
}()

// usageTable renders the quota's limits as aligned lines: LIMIT, USED, HARD, NEAREST (the
// scope nearest the limit) and POLICY (whether it is in force, in words).
func usageTable(st *cqv1.QuotaStatus, scopes map[string]string) []string {
	if len(st.EffectivePolicy) == 0 {
		return nil
	}
	effective := slices.Clone(st.EffectivePolicy)
	rank := func(limit string) int {
		if i := slices.Index(limitOrder, limit); i >= 0 {
			return i
		}
		return len(limitOrder)
	}
	slices.SortStableFunc(effective, func(a, b cqv1.EffectiveLimit) int { return rank(a.Limit) - rank(b.Limit) })

	rows := [][]string{{"LIMIT", "USED", "HARD", "NEAREST", "POLICY"}}
	for _, e := range effective {
		used, hard := "-", e.Value
		if q, ok := st.Hard[e.Limit]; ok {
			hard = q.String()
		}
		if q, ok := st.Used[e.Limit]; ok {
			used = q.String()
		}
		nearest := scopes[e.Limit]
		if nearest == "" {
			nearest = "-"
		}
		rows = append(rows, []string{e.Limit, used, hard, nearest, policyInWords(e)})
	}
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len(c))
		}
	}
	lines := make([]string, 0, len(rows))
	for _, r := range rows {
		var b strings.Builder
		for i, c := range r {
			if i == len(r)-1 {
				b.WriteString(c)
				break
			}
			fmt.Fprintf(&b, "%-*s  ", widths[i], c)
		}
		lines = append(lines, b.String())
	}
	if len(lines) > 32 { // the schema's bound; there are at most 23 rows today
		lines = lines[:32]
	}
	return lines
}

// policyInWords says whether a limit is in force, naming what overrides it.
func policyInWords(e cqv1.EffectiveLimit) string {
	capped := ""
	if e.CappedBy != "" {
		capped = "; capped by " + e.CappedBy + " at " + e.CappedAt
	}
	switch e.State {
	case cqv1.LimitCapped:
		return "capped by " + e.CappedBy + " at " + e.CappedAt
	case cqv1.LimitOverridden:
		return "overridden by " + strings.Join(e.OverriddenBy, ", ")
	case cqv1.LimitPartlyOverridden:
		return "in force; where both apply, " + strings.Join(e.OverriddenBy, ", ") + " wins" + capped
	default:
		return "in force"
	}
}
