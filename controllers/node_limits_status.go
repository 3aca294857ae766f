package controllers

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// setNodeStatus adds the node rules to a cluster quota's status: hard and used, the
// nodes nearest the rules, and the effective policy.
func setNodeStatus(st *cqv1.QuotaStatus, v *QuotaView) {
	st.Nodes = nil
	nv := v.Nodes
	if nv == nil {
		return
	}
	for key, hard := range nv.Hard {
		if key == quota.KeyNodeCheckpoints {
			st.Hard[key] = *resource.NewQuantity(hard, resource.DecimalSI)
			st.Used[key] = *resource.NewQuantity(nv.Used[key], resource.DecimalSI)
		} else {
			st.Hard[key] = *bytesQuantity(hard)
			st.Used[key] = *bytesQuantity(nv.Used[key])
		}
	}
	for _, n := range nv.Nodes {
		u := cqv1.NodeUsage{Node: n.Node, Usage: cqv1.Usage{Checkpoints: n.Checkpoints, Storage: *bytesQuantity(n.Bytes)}}
		if n.HasFree {
			u.FilesystemFree = bytesQuantity(n.Free)
			if n.MinFree > 0 {
				u.MinFree = bytesQuantity(n.MinFree)
			}
		}
		st.Nodes = append(st.Nodes, u)
	}
	st.EffectivePolicy = append(append([]cqv1.EffectiveLimit(nil), st.EffectivePolicy...), nv.Effective...)
	st.Summary = summary(st, &v.Result, v.Remote)
}

// nodeBlockedMessage names each node that stays over a rule, how much is missing and what
// keeps it; "" when none does.
func nodeBlockedMessage(v *QuotaView) string {
	if v.Nodes == nil || len(v.Nodes.Blocked) == 0 {
		return ""
	}
	var parts []string
	for i, b := range v.Nodes.Blocked {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more nodes", len(v.Nodes.Blocked)-i))
			break
		}
		missing := quota.Bytes(b.Missing) + " still missing"
		if b.Rule == quota.KeyNodeCheckpoints {
			missing = fmt.Sprintf("%d checkpoints still over", b.Missing)
		}
		var left []string
		if b.Pinned > 0 {
			left = append(left, fmt.Sprintf("%d pinned checkpoints (%s)", b.Pinned, quota.Bytes(b.PinnedBytes)))
		}
		if n := b.Unreadable + b.Unattributed; n > 0 {
			left = append(left, fmt.Sprintf("%d unreadable archives (%s)", n, quota.Bytes(b.UnreadableBytes+b.UnattributedBytes)))
		}
		if b.OtherBytes > 0 {
			left = append(left, quota.Bytes(b.OtherBytes)+" of files that are not archives")
		}
		if len(left) == 0 {
			left = append(left, "nothing that may be pruned")
		}
		parts = append(parts, fmt.Sprintf("node %s: %s %s, nothing more can be pruned: left are %s",
			b.Node, b.Rule, missing, strings.Join(left, ", ")))
	}
	return strings.Join(parts, "; ") + "; unpin checkpoints, free space on the node or relax the rule"
}
