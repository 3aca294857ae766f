package nodeagent

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// One agent sweeps each store: the first node by name whose check of it could write lately.
func TestSweeperIsTheFirstNodeThatWritesLately(t *testing.T) {
	now := time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC)
	node := func(name string, checks ...cqv1.NodeStoreCheck) cqv1.CheckpointNode {
		n := cqv1.CheckpointNode{ObjectMeta: metav1.ObjectMeta{Name: name}}
		n.Status.Stores = checks
		return n
	}
	check := func(store string, writable bool, ago time.Duration) cqv1.NodeStoreCheck {
		return cqv1.NodeStoreCheck{Store: store, Reachable: writable, Writable: writable, CheckTime: metav1.NewTime(now.Add(-ago))}
	}
	cases := map[string]struct {
		nodes []cqv1.CheckpointNode
		want  string
	}{
		"the first by name": {[]cqv1.CheckpointNode{node("node-b", check("archive", true, time.Minute)), node("node-a", check("archive", true, time.Minute))}, "node-a"},
		"not one that cannot write": {[]cqv1.CheckpointNode{node("node-a", check("archive", false, time.Minute)),
			node("node-b", check("archive", true, time.Minute))}, "node-b"},
		"not one gone (its last check is old)": {[]cqv1.CheckpointNode{node("node-a", check("archive", true, time.Hour)),
			node("node-b", check("archive", true, time.Minute))}, "node-b"},
		"not one that checked another store": {[]cqv1.CheckpointNode{node("node-a", check("other", true, time.Minute)),
			node("node-b", check("archive", true, time.Minute))}, "node-b"},
		"none that can write": {[]cqv1.CheckpointNode{node("node-a", check("archive", false, time.Minute)), node("node-b")}, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := sweeperOf(tc.nodes, "archive", now, 15*time.Minute); got != tc.want {
				t.Errorf("sweeperOf = %q, want %q", got, tc.want)
			}
		})
	}
}
