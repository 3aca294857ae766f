package controllers

import (
	"context"
	"fmt"
	"strconv"

	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// +kubebuilder:rbac:groups=checkpointquota.dev,resources=checkpointnodes,verbs=get;list;watch

// NodeView is what the node rules found for one cluster quota that sets them.
type NodeView struct {
	// Nodes are the nodes nearest the rules in force, fullest first.
	Nodes []quota.NodeUsage
	// Blocked are the nodes where this quota's rules in force cannot be brought back.
	Blocked []quota.NodeBlock
	// Hard and Used are this quota's per-node limits in force and the usage of the node
	// nearest each.
	Hard, Used map[string]int64
	Effective  []cqv1.EffectiveLimit
}

// nodeRules are the node rules of the quotas of a pass, indexed like its quotas.
type nodeRules struct {
	in   quota.NodeInput
	sets map[int]bool
}

// limitNodes adds to res what the node rules prune, and hands each cluster quota that
// sets them its NodeView.
func (r *PruneReconciler) limitNodes(ctx context.Context, s *passScope, res *quota.Result) error {
	nr, err := r.nodeRules(ctx, s)
	if err != nil {
		return err
	}
	views := map[policy.Ref]*NodeView{}
	if len(nr.sets) == 0 {
		r.Views.setNodeViews(views)
		return nil
	}
	// An archive that a limit moves leaves its node only once it is stored: while its
	// store does not take it, it frees nothing, and the node rules may prune it.
	marked := make([]bool, len(s.archives))
	for _, p := range res.Prune {
		marked[p.Archive] = !r.moveStuck(s, p)
	}
	active := make([]bool, len(s.governance.Quotas))
	for i, q := range s.governance.Quotas {
		active[i] = !q.DryRun
	}
	out := quota.ComputeNodes(nr.in, marked, active)
	takeOver(res, out.Prune)
	res.Prune = append(res.Prune, out.Prune...)
	for _, p := range out.Prune {
		res.Quotas[p.Quota].Pending = append(res.Quotas[p.Quota].Pending, p)
	}
	blocked := out.Blocked
	// A DryRun quota reports what switching it to Enforce would add, as for the other limits.
	for q := range nr.sets {
		if active[q] {
			continue
		}
		with := append([]bool(nil), active...)
		with[q] = true
		dry := quota.ComputeNodes(nr.in, marked, with)
		pruned := map[int]bool{}
		for _, p := range out.Prune {
			pruned[p.Archive] = true
		}
		for _, p := range dry.Prune {
			if p.Quota == q && !pruned[p.Archive] {
				res.Quotas[q].Pending = append(res.Quotas[q].Pending, p)
			}
		}
		for _, b := range dry.Blocked {
			if b.Quota == q {
				blocked = append(blocked, b)
			}
		}
	}
	all := make([]bool, len(active))
	for i := range all {
		all[i] = true
	}
	for q := range nr.sets {
		views[s.policies[q].Ref] = nr.view(q, out, blocked, all)
	}
	r.Views.setNodeViews(views)
	return nil
}

// view is the NodeView of quota q.
func (nr *nodeRules) view(q int, out quota.NodeOutcome, blocked []quota.NodeBlock, all []bool) *NodeView {
	v := &NodeView{Nodes: out.Nodes, Hard: map[string]int64{}, Used: map[string]int64{}}
	for _, b := range blocked {
		if b.Quota == q {
			v.Blocked = append(v.Blocked, b)
		}
	}
	limit := func(key string, limits []quota.NodeLimit, used func(quota.NodeUsage) int64, format func(int64) string) {
		win := quota.StrictestLimit(limits, nr.in.Quotas, all)
		for _, l := range limits {
			if l.Quota != q {
				continue
			}
			e := cqv1.EffectiveLimit{Limit: key, Value: format(l.Value), State: cqv1.LimitInForce}
			if w := limits[win]; w.Quota != q {
				e.State, e.OverriddenBy = cqv1.LimitOverridden, []string{nr.in.Quotas[w.Quota].Name}
			} else {
				v.Hard[key] = l.Value
				for _, n := range out.Nodes {
					v.Used[key] = max(v.Used[key], used(n))
				}
			}
			v.Effective = append(v.Effective, e)
		}
	}
	limit(quota.KeyNodeCheckpoints, nr.in.Checkpoints, func(n quota.NodeUsage) int64 { return n.Checkpoints },
		func(n int64) string { return strconv.FormatInt(n, 10) })
	limit(quota.KeyNodeStorage, nr.in.Storage, func(n quota.NodeUsage) int64 { return n.Bytes },
		func(n int64) string { return bytesQuantity(n).String() })
	for i, f := range nr.in.Floors {
		if f.Quota != q {
			continue
		}
		e := cqv1.EffectiveLimit{Limit: quota.KeyNodeMinFree, Value: floorString(f), State: cqv1.LimitInForce}
		wins, fss := out.FloorWins[i], 0
		for _, rep := range nr.in.Nodes {
			fss += len(rep.Filesystems)
		}
		if fss > 0 && wins < fss {
			e.State = cqv1.LimitPartlyOverridden
			if wins == 0 {
				e.State = cqv1.LimitOverridden
			}
			for _, o := range nr.in.Floors {
				if o.Quota != q {
					e.OverriddenBy = append(e.OverriddenBy, nr.in.Quotas[o.Quota].Name)
				}
			}
		}
		v.Effective = append(v.Effective, e)
	}
	return v
}

func floorString(f quota.Floor) string {
	if f.IsPercent {
		return fmt.Sprintf("%d%%", f.Percent)
	}
	return bytesQuantity(f.Bytes).String()
}

// nodeRules reads the node rules of the cluster quotas and the agents' reports. A value
// that does not parse (admission rejects them) sets no rule: doubt keeps archives.
func (r *PruneReconciler) nodeRules(ctx context.Context, s *passScope) (*nodeRules, error) {
	nr := &nodeRules{sets: map[int]bool{}, in: quota.NodeInput{Archives: s.archives, Quotas: s.governance.Quotas,
		Nodes: map[string]quota.NodeReport{}}}
	for i, obj := range s.objects {
		cq, ok := obj.(*cqv1.ClusterCheckpointQuota)
		if !ok {
			continue
		}
		if l := cq.Spec.Limits.PerNode; l != nil {
			if l.Checkpoints != nil {
				nr.in.Checkpoints = append(nr.in.Checkpoints, quota.NodeLimit{Quota: i, Value: *l.Checkpoints})
				nr.sets[i] = true
			}
			if b, ok := sizeBytes(l.Storage); ok {
				nr.in.Storage = append(nr.in.Storage, quota.NodeLimit{Quota: i, Value: b})
				nr.sets[i] = true
			}
		}
		if fs := cq.Spec.NodeFilesystem; fs != nil && fs.MinFree != nil {
			if f, ok := quota.ParseMinFree(*fs.MinFree); ok {
				f.Quota = i
				nr.in.Floors = append(nr.in.Floors, f)
				nr.sets[i] = true
			}
		}
	}
	if len(nr.sets) == 0 {
		return nr, nil
	}
	nr.in.Dirs = make([]string, len(s.live))
	for i, c := range s.live {
		nr.in.Dirs[i] = c.Spec.Archive.Directory
	}
	var nodes cqv1.CheckpointNodeList
	if err := r.Client.List(ctx, &nodes, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing CheckpointNodes: %w", err)
	}
	s.storeChecks = make(map[string]map[string]cqv1.NodeStoreCheck, len(nodes.Items))
	for _, n := range nodes.Items {
		rep := quota.NodeReport{UnattributedArchives: n.Status.Unattributed.Archives, UnattributedBytes: n.Status.Unattributed.Bytes}
		for _, f := range n.Status.Filesystems {
			rep.Filesystems = append(rep.Filesystems, quota.Filesystem{Dirs: f.Directories, Capacity: f.CapacityBytes,
				Free: f.FreeBytes, ArchiveBytes: f.ArchiveBytes, UnattributedBytes: f.UnattributedBytes})
		}
		nr.in.Nodes[n.Name] = rep
		for _, chk := range n.Status.Stores {
			if s.storeChecks[n.Name] == nil {
				s.storeChecks[n.Name] = map[string]cqv1.NodeStoreCheck{}
			}
			s.storeChecks[n.Name][chk.Store] = chk
		}
	}
	return nr, nil
}

func sizeBytes(s *cqv1.Size) (int64, bool) {
	if s == nil {
		return 0, false
	}
	return s.Bytes()
}
