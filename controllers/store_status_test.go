package controllers

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

func TestStoreStatus(t *testing.T) {
	store := &cqv1.CheckpointStore{ObjectMeta: metav1.ObjectMeta{Name: "archive"}}
	stored := func(storeName string, size int64) cqv1.Checkpoint {
		c := cqv1.Checkpoint{Spec: cqv1.CheckpointSpec{Archive: &cqv1.ArchiveSource{SizeBytes: size}}}
		if storeName != "" {
			c.Status.Location = &cqv1.ArchiveLocation{Store: storeName}
		}
		return c
	}
	node := func(name string, checks ...cqv1.NodeStoreCheck) cqv1.CheckpointNode {
		return cqv1.CheckpointNode{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: cqv1.CheckpointNodeStatus{Stores: checks}}
	}
	type want struct {
		objects, bytes      int64
		reachable, writable metav1.ConditionStatus
		message             string
	}
	cases := map[string]struct {
		cps   []cqv1.Checkpoint
		nodes []cqv1.CheckpointNode
		want  want
	}{
		"nothing checked, nothing stored": {
			want: want{reachable: metav1.ConditionUnknown, writable: metav1.ConditionUnknown, message: "no node agent has checked the store yet"},
		},
		"counts only its own objects": {
			cps:   []cqv1.Checkpoint{stored("archive", 100), stored("archive", 50), stored("other", 7), stored("", 9)},
			nodes: []cqv1.CheckpointNode{node("n1", cqv1.NodeStoreCheck{Store: "archive", Reachable: true, Writable: true})},
			want:  want{objects: 2, bytes: 150, reachable: metav1.ConditionTrue, writable: metav1.ConditionTrue, message: "every node that checked (1) can reach the store"},
		},
		"one node cannot write": {
			nodes: []cqv1.CheckpointNode{
				node("n1", cqv1.NodeStoreCheck{Store: "archive", Reachable: true, Writable: true}),
				node("n2", cqv1.NodeStoreCheck{Store: "archive", Reachable: true, Message: "AccessDenied"}, cqv1.NodeStoreCheck{Store: "other"}),
			},
			want: want{reachable: metav1.ConditionTrue, writable: metav1.ConditionFalse, message: "every node that checked (2) can reach the store"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			st := storeStatus(store, tc.cps, tc.nodes)
			r := meta.FindStatusCondition(st.Conditions, cqv1.StoreConditionReachable)
			w := meta.FindStatusCondition(st.Conditions, cqv1.StoreConditionWritable)
			got := want{objects: st.Objects, bytes: st.Bytes, reachable: r.Status, writable: w.Status, message: r.Message}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
			if w.Status == metav1.ConditionFalse && w.Message != "1 of 2 nodes cannot write to the store; n2: AccessDenied" {
				t.Errorf("Writable message %q", w.Message)
			}
		})
	}
}

// A store checked before: the new status differs from the store's, and the store the
// caller compares with and patches from is left as it was (a condition changed in place
// in the store's own slice kept Reachable Unknown end to end: the write was never made).
func TestStoreStatusLeavesTheStore(t *testing.T) {
	store := &cqv1.CheckpointStore{ObjectMeta: metav1.ObjectMeta{Name: "archive"}}
	store.Status = storeStatus(store, nil, nil)
	before := store.DeepCopy()
	down := cqv1.CheckpointNode{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: cqv1.CheckpointNodeStatus{
		Stores: []cqv1.NodeStoreCheck{{Store: "archive", Message: "connection refused"}}}}
	st := storeStatus(store, nil, []cqv1.CheckpointNode{down})
	if diff := cmp.Diff(before, store); diff != "" {
		t.Errorf("storeStatus changed the store (-before +after):\n%s", diff)
	}
	if got := meta.FindStatusCondition(st.Conditions, cqv1.StoreConditionReachable); got == nil || got.Status != metav1.ConditionFalse {
		t.Errorf("Reachable = %v; want False", got)
	}
	if cmp.Equal(store.Status, st) {
		t.Error("the new status equals the store's: Reconcile would not write it")
	}
}
