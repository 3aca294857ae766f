package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"

	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

func newExplain(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "explain CHECKPOINT",
		Short: "Which quota governs each limit of a checkpoint, its rank in each scope, and whether it would be pruned now",
		Long: "Reads the quotas, pods and Checkpoints as the manager does and runs the manager's own arithmetic on them:\n" +
			"for each limit in force for the archive, the quota it comes from, the archive's place among the archives it\n" +
			"counts with (newest first), and whether pruning would delete it now, and why.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.explain(cmd.Context(), o.streams.Out, args[0])
		},
	}
}

func (o *options) explain(ctx context.Context, w io.Writer, name string) error {
	out := &writer{w: w}
	c, _, cp, err := o.checkpoint(ctx, name)
	if err != nil {
		return err
	}
	// A copy fetched back to its node counts there; an offloaded archive otherwise counts in
	// the store, under remoteLimits.
	stored := cp.IsOffloaded() && !cp.IsFetchedCopy()
	s, err := loadSnapshot(ctx, c, time.Now(), stored)
	if err != nil {
		return err
	}
	idx := -1
	for i, x := range s.checkpoints {
		if x.UID == cp.UID {
			idx = i
		}
	}
	out.printf("Checkpoint %s/%s\n", cp.Namespace, cp.Name)
	if idx < 0 {
		out.println("  not counted: it has no spec.archive yet (published by an agent before v0.3) or is being deleted")
		return out.err
	}
	a := &s.input.Archives[idx]
	where := "on node " + a.Node
	if loc := cp.Status.Location; stored {
		where = "in CheckpointStore " + loc.Store + " (from node " + a.Node + "), under remoteLimits"
	}
	out.printf("  archive    %s/%s/%s %s, %s, taken %s\n", a.Namespace, a.Pod, a.Container, where,
		quota.Bytes(a.Size), a.CheckpointTime.UTC().Format(time.RFC3339))
	if p := s.pods[types.NamespacedName{Namespace: a.Namespace, Name: a.Pod}]; p == nil || (a.PodUID != "" && string(p.UID) != a.PodUID) {
		out.println("  orphan     its pod is gone: under a winning orphans.policy Delete it goes after the grace period, counted from when the manager saw the pod gone")
	}

	rules := s.governance.Rules[idx]
	res := quota.Compute(s.input)
	out.println("Limits:")
	if len(rules.Bounds) == 0 && rules.MaxSize == nil && rules.MaxAge == nil && rules.Orphans == nil {
		out.println("  none: no quota governs this archive")
	}
	for _, l := range rules.Bounds {
		scope := a.Scope(l.Per)
		rank, count, used := s.rank(idx, l)
		where := scope
		if where == "" {
			where = "the quota's archives together"
		}
		out.printf("  %-26s %s from %s: %d of %d newest in %s, %s of %s used%s\n", l.Name, value(l), s.input.Quotas[l.Quota].Name,
			rank, count, where, amount(used, l.Resource), amount(l.Value, l.Resource), s.capped(rules, l))
	}
	if r := rules.MaxSize; r != nil {
		out.printf("  %-26s %s from %s: this archive is %s\n", policy.NameMaxCheckpointSize, quota.Bytes(r.Value), s.input.Quotas[r.Quota].Name, quota.Bytes(a.Size))
	}
	if r := rules.MaxAge; r != nil {
		out.printf("  %-26s %s from %s: this archive is %s old\n", cmp.Or(r.Rule, policy.NameMaxAge), r.Duration, s.input.Quotas[r.Quota].Name, s.input.Now.Sub(a.CheckpointTime).Round(time.Second))
	}
	if r := rules.Orphans; r != nil {
		out.printf("  %-26s Delete after %s from %s\n", policy.NameOrphans, r.Duration, s.input.Quotas[r.Quota].Name)
	}
	out.println("Decision:")
	out.println("  " + decision(a, idx, &res, s))
	return out.err
}

// capped says ", capped by ClusterCheckpointQuota X at N" when a cluster quota's limit of
// the same level and resource, which holds alongside as a ceiling, is below l.
func (s *snapshot) capped(rules *quota.Rules, l quota.Bound) string {
	if l.Per == quota.PerGroup {
		return ""
	}
	for _, c := range rules.Bounds {
		if c.Quota != l.Quota && c.Per == l.Per && c.Resource == l.Resource && c.Value < l.Value && s.input.Quotas[c.Quota].Cluster {
			return fmt.Sprintf(", capped by %s at %s", s.input.Quotas[c.Quota].Name, value(c))
		}
	}
	return ""
}

// decision says whether pruning deletes the archive now, and why.
func decision(a *quota.Archive, idx int, res *quota.Result, s *snapshot) string {
	for _, p := range res.Prune {
		if p.Archive == idx {
			return fmt.Sprintf("pruned now by %s: %s in %s (oldest unpinned first)", s.input.Quotas[p.Quota].Name, p.Reason, p.Scope)
		}
	}
	for qi, o := range res.Quotas {
		for _, p := range o.Pending {
			if p.Archive == idx {
				return fmt.Sprintf("kept: %s is DryRun; under Enforce it would prune this archive: %s in %s", s.input.Quotas[qi].Name, p.Reason, p.Scope)
			}
		}
	}
	switch {
	case a.Pinned:
		return "kept: pinned (spec.pinned or a .keep marker); it still counts against every limit above"
	case a.Unreadable:
		return "kept: unreadable archives are never deleted automatically; it still counts"
	case s.governance.Rules[idx].Held != "":
		return "kept: held, since " + s.governance.Rules[idx].Held + "; it still counts"
	}
	for _, l := range s.governance.Rules[idx].Bounds {
		for _, b := range res.Quotas[l.Quota].Blocked {
			if b.Rule == l.Name && b.Scope == a.Scope(l.Per) {
				return fmt.Sprintf("kept: %s of %s stays over its limit, but what goes before it cannot be pruned (see %s's OverQuota condition)",
					l.Name, cmp.Or(b.Scope, "its targets"), s.input.Quotas[l.Quota].Name)
			}
		}
	}
	return "kept: every limit above holds with it"
}

// rank is the archive's place, newest first, among the archives that count with it under
// limit l (same quota, same limit, same scope), how many there are, and their usage.
func (s *snapshot) rank(idx int, l quota.Bound) (rank, count int, used int64) {
	self := &s.input.Archives[idx]
	scope := self.Scope(l.Per)
	var members []int
	for i := range s.input.Archives {
		a := &s.input.Archives[i]
		if a.Scope(l.Per) != scope {
			continue
		}
		for _, m := range s.governance.Rules[i].Bounds {
			if m.Quota == l.Quota && m.Name == l.Name {
				members = append(members, i)
				if l.Resource == policy.ResourceStorage {
					used += a.Size
				} else {
					used++
				}
				break
			}
		}
	}
	sort.Slice(members, func(i, j int) bool { return quota.Older(&s.input.Archives[members[j]], &s.input.Archives[members[i]]) })
	for i, m := range members {
		if m == idx {
			rank = i + 1
		}
	}
	return rank, len(members), used
}

func value(l quota.Bound) string { return amount(l.Value, l.Resource) }

func amount(n int64, r policy.Resource) string {
	if r == policy.ResourceStorage {
		return quota.Bytes(n)
	}
	return fmt.Sprint(n)
}
