package controllers

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"k8s.io/apimachinery/pkg/api/resource"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

func TestSetNodeStatus(t *testing.T) {
	quotaLimit := inForce("perPod.checkpoints", "5")
	nodeLimit := inForce(quota.KeyNodeStorage, "6Mi")
	mi := resource.MustParse("1Mi")
	cases := map[string]struct {
		nodes *NodeView
		want  cqv1.QuotaStatus
	}{
		"no node rules: the nodes of the last pass go": {
			want: cqv1.QuotaStatus{Hard: quantities("perPod.checkpoints", "5"), Used: quantities("perPod.checkpoints", "4"),
				EffectivePolicy: []cqv1.EffectiveLimit{quotaLimit}},
		},
		"node rules join hard, used, the policy and the summary": {
			nodes: &NodeView{
				Hard: map[string]int64{quota.KeyNodeCheckpoints: 3, quota.KeyNodeStorage: 6 << 20},
				Used: map[string]int64{quota.KeyNodeCheckpoints: 3, quota.KeyNodeStorage: 5 << 20},
				Nodes: []quota.NodeUsage{
					{Node: "n-1", Checkpoints: 3, Bytes: 5 << 20, HasFree: true, Free: 1 << 20, MinFree: 2 << 20},
					{Node: "n-2", Checkpoints: 1, Bytes: 1 << 20, HasFree: true, Free: 1 << 20},
					{Node: "n-3", Checkpoints: 1, Bytes: 1 << 20},
				},
				Effective: []cqv1.EffectiveLimit{nodeLimit},
			},
			want: cqv1.QuotaStatus{
				Hard:            quantities("perPod.checkpoints", "5", quota.KeyNodeCheckpoints, "3", quota.KeyNodeStorage, "6Mi"),
				Used:            quantities("perPod.checkpoints", "4", quota.KeyNodeCheckpoints, "3", quota.KeyNodeStorage, "5Mi"),
				EffectivePolicy: []cqv1.EffectiveLimit{quotaLimit, nodeLimit},
				Summary:         cqv1.UsageSummary{Checkpoints: "3/3", Storage: "5Mi/6Mi"},
				Nodes: []cqv1.NodeUsage{
					{Node: "n-1", Usage: cqv1.Usage{Checkpoints: 3, Storage: resource.MustParse("5Mi")}, FilesystemFree: &mi, MinFree: bytesQuantity(2 << 20)},
					{Node: "n-2", Usage: cqv1.Usage{Checkpoints: 1, Storage: mi}, FilesystemFree: &mi},
					{Node: "n-3", Usage: cqv1.Usage{Checkpoints: 1, Storage: mi}},
				},
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			st := &cqv1.QuotaStatus{Hard: quantities("perPod.checkpoints", "5"), Used: quantities("perPod.checkpoints", "4"),
				EffectivePolicy: []cqv1.EffectiveLimit{quotaLimit}, Nodes: []cqv1.NodeUsage{{Node: "gone"}}}
			setNodeStatus(st, &QuotaView{Nodes: tc.nodes})
			if diff := cmp.Diff(tc.want, *st, sameQuantity, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNodeBlockedMessage(t *testing.T) {
	const tail = "; unpin checkpoints, free space on the node or relax the rule"
	storage := func(node string) quota.NodeBlock {
		return quota.NodeBlock{Rule: quota.KeyNodeStorage, Node: node, Missing: 1 << 20}
	}
	var seven []quota.NodeBlock
	for i := range 7 {
		seven = append(seven, storage(fmt.Sprintf("n-%d", i)))
	}
	line := func(node string) string {
		return "node " + node + ": perNode.storage 1Mi still missing, nothing more can be pruned: left are nothing that may be pruned"
	}
	cases := map[string]struct {
		nodes *NodeView
		want  string
	}{
		"no node rules":      {},
		"no node stays over": {nodes: &NodeView{}},
		"what is left, in archives and bytes": {
			nodes: &NodeView{Blocked: []quota.NodeBlock{{Rule: quota.KeyNodeMinFree, Node: "n-1", Missing: 3 << 20,
				Pinned: 2, PinnedBytes: 2 << 20, Unreadable: 1, UnreadableBytes: 1 << 20, Unattributed: 1, UnattributedBytes: 1 << 20, OtherBytes: 6 << 20}}},
			want: "node n-1: nodeFilesystem.minFree 3Mi still missing, nothing more can be pruned: left are 2 pinned checkpoints (2Mi), " +
				"2 unreadable archives (2Mi), 6Mi of files that are not archives" + tail,
		},
		"a count rule counts archives": {
			nodes: &NodeView{Blocked: []quota.NodeBlock{{Rule: quota.KeyNodeCheckpoints, Node: "n-1", Missing: 2, Pinned: 2, PinnedBytes: 2 << 20}}},
			want:  "node n-1: perNode.checkpoints 2 checkpoints still over, nothing more can be pruned: left are 2 pinned checkpoints (2Mi)" + tail,
		},
		"five nodes at most": {
			nodes: &NodeView{Blocked: seven},
			want:  line("n-0") + "; " + line("n-1") + "; " + line("n-2") + "; " + line("n-3") + "; " + line("n-4") + "; and 2 more nodes" + tail,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, nodeBlockedMessage(&QuotaView{Nodes: tc.nodes})); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
		})
	}
}
