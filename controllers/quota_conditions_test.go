package controllers

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

const condGen = 4

var (
	errUnparsed   = errors.New(`spec.maxAge: time: unknown unit "d" in duration "7d"`)
	pendingTwo    = []PendingArchive{{Name: "c-1", Size: 1 << 20}, {Name: "c-2", Size: 2 << 20}}
	blockedByPins = []quota.Block{{Rule: "perPod.checkpoints", Scope: "shop/web-0", Used: 3, Hard: 2, Pinned: []string{"c-1"}}}
)

func condition(typ string, status metav1.ConditionStatus, reason, message string) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: message, ObservedGeneration: condGen}
}

// unknownWhileUnparsed is what a spec that does not parse leaves OverQuota and Conflict at.
func unknownWhileUnparsed(typ string) metav1.Condition {
	return condition(typ, metav1.ConditionUnknown, cqv1.ReasonInvalidSpec, "Not computed while the spec does not parse (see Ready)")
}

// previousSpec is a status with a value in every field that a spec sets, as the pass
// before a spec that does not parse left it.
func previousSpec(pruned cqv1.PrunedStatus) cqv1.QuotaStatus {
	u := cqv1.Usage{Checkpoints: 3, Storage: resource.MustParse("3Mi")}
	free := resource.MustParse("1Gi")
	return cqv1.QuotaStatus{ObservedGeneration: 1,
		Summary:         cqv1.UsageSummary{Checkpoints: "3/5", Storage: "3Mi/1Gi"},
		Hard:            quantities("total.checkpoints", "5"),
		Used:            quantities("total.checkpoints", "3"),
		UsageTable:      []string{"LIMIT  USED  HARD", "total.checkpoints  3  5"},
		Namespaces:      []cqv1.NamespaceUsage{{Namespace: "shop", Usage: u}},
		Pods:            []cqv1.PodUsage{{Namespace: "shop", Pod: "web-0", Usage: u}},
		Containers:      []cqv1.ContainerUsage{{Namespace: "shop", Pod: "web-0", Container: "app", Usage: u}},
		Nodes:           []cqv1.NodeUsage{{Node: "n-1", Usage: u, FilesystemFree: &free}},
		EffectivePolicy: []cqv1.EffectiveLimit{inForce("total.checkpoints", "5")},
		Pruned:          pruned,
		PendingPrune:    &cqv1.PendingPrune{Checkpoints: 1, Names: []string{"c-1"}},
		Conditions: []metav1.Condition{
			condition(cqv1.ConditionReady, metav1.ConditionTrue, cqv1.ReasonUsageComputed, "computed"),
			condition(cqv1.ConditionOverQuota, metav1.ConditionTrue, cqv1.ReasonDryRun, "DryRun: Enforce would prune 1"),
			condition(cqv1.ConditionConflict, metav1.ConditionTrue, cqv1.ReasonConflictingQuota, "perPod.checkpoints is also set"),
		},
	}
}

func TestSetReady(t *testing.T) {
	cases := map[string]struct {
		v    QuotaView
		want metav1.Condition
	}{
		"usage computed": {
			want: condition(cqv1.ConditionReady, metav1.ConditionTrue, cqv1.ReasonUsageComputed,
				"Usage is computed from every Checkpoint the quota governs"),
		},
		"a spec that does not parse names the field and the fix": {
			v: QuotaView{Err: errUnparsed},
			want: condition(cqv1.ConditionReady, metav1.ConditionFalse, cqv1.ReasonInvalidSpec,
				`spec.maxAge: time: unknown unit "d" in duration "7d"; fix the field so that the quota can be enforced`),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			st := &cqv1.QuotaStatus{}
			v := tc.v
			v.Generation = condGen
			setReady(st, &v)
			if diff := cmp.Diff([]metav1.Condition{tc.want}, st.Conditions, ignoreTransitions); diff != "" {
				t.Errorf("conditions (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetOverQuota(t *testing.T) {
	over := func(status metav1.ConditionStatus, reason, message string) metav1.Condition {
		return condition(cqv1.ConditionOverQuota, status, reason, message)
	}
	held := []quota.Block{{Rule: "perPod.checkpoints", Scope: "shop/db-0", Used: 3, Hard: 1, Held: []string{"c-1"},
		HeldBecause: quota.HeldByLabels}}
	cases := map[string]struct {
		v    QuotaView
		want metav1.Condition
	}{
		"within limits": {
			want: over(metav1.ConditionFalse, cqv1.ReasonWithinLimits, "Every limit holds"),
		},
		"pruning": {
			v:    QuotaView{Pending: pendingTwo},
			want: over(metav1.ConditionFalse, cqv1.ReasonPruning, "Pruning 2 checkpoints (3Mi): c-1, c-2"),
		},
		"dry run": {
			v: QuotaView{Pending: pendingTwo, DryRun: true},
			want: over(metav1.ConditionTrue, cqv1.ReasonDryRun,
				"DryRun: Enforce would prune 2 checkpoints (3Mi): c-1, c-2; see status.pendingPrune"),
		},
		"dry run with nothing to prune": {
			v:    QuotaView{DryRun: true},
			want: over(metav1.ConditionFalse, cqv1.ReasonWithinLimits, "Every limit holds"),
		},
		"pins win over what is pending": {
			v:    QuotaView{Pending: pendingTwo, Result: quota.Outcome{Blocked: blockedByPins}},
			want: over(metav1.ConditionTrue, cqv1.ReasonPinnedCheckpoints, blockedMessage(blockedByPins)),
		},
		"held archives without pins": {
			v:    QuotaView{Result: quota.Outcome{Blocked: held}},
			want: over(metav1.ConditionTrue, cqv1.ReasonHeldCheckpoints, blockedMessage(held)),
		},
		"held and pinned archives: the pins are named in the reason": {
			v:    QuotaView{Result: quota.Outcome{Blocked: append(append([]quota.Block(nil), held...), blockedByPins...)}},
			want: over(metav1.ConditionTrue, cqv1.ReasonPinnedCheckpoints, blockedMessage(append(append([]quota.Block(nil), held...), blockedByPins...))),
		},
		"a node that stays over": {
			v: QuotaView{Pending: pendingTwo, Nodes: &NodeView{Blocked: []quota.NodeBlock{{Rule: quota.KeyNodeCheckpoints, Node: "n-1", Missing: 2}}}},
			want: over(metav1.ConditionTrue, cqv1.ReasonNodePruningBlocked,
				"node n-1: perNode.checkpoints 2 checkpoints still over, nothing more can be pruned: left are nothing that may be pruned; unpin checkpoints, free space on the node or relax the rule"),
		},
		"a spec that does not parse: unknown, whatever the last view held": {
			v:    QuotaView{Err: errUnparsed, Pending: pendingTwo, DryRun: true, Result: quota.Outcome{Blocked: blockedByPins}},
			want: unknownWhileUnparsed(cqv1.ConditionOverQuota),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			st := &cqv1.QuotaStatus{}
			v := tc.v
			v.Generation = condGen
			setOverQuota(st, &v)
			if diff := cmp.Diff([]metav1.Condition{tc.want}, st.Conditions, ignoreTransitions); diff != "" {
				t.Errorf("conditions (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetConflict(t *testing.T) {
	conflicts := []quota.Conflict{
		{Key: "perPod.checkpoints", Other: policy.Ref{Kind: policy.KindQuota, Namespace: "shop", Name: "b"}, Pod: "shop/web-0", Won: true},
		{Key: "total.storage", Other: policy.Ref{Kind: policy.KindQuota, Namespace: "shop", Name: "c"}, Pod: "shop/web-1"}}
	cases := map[string]struct {
		v    QuotaView
		want metav1.Condition
	}{
		"no conflict": {
			want: condition(cqv1.ConditionConflict, metav1.ConditionFalse, cqv1.ReasonNoConflict,
				"No other quota of the same specificity sets the same limits for the same archives"),
		},
		"conflicts name the other quota and who wins": {
			v: QuotaView{Conflicts: conflicts},
			want: condition(cqv1.ConditionConflict, metav1.ConditionTrue, cqv1.ReasonConflictingQuota,
				"perPod.checkpoints is also set by CheckpointQuota shop/b for pod shop/web-0 (this quota's smaller limit is in force); "+
					"total.storage is also set by CheckpointQuota shop/c for pod shop/web-1 (the other quota's smaller limit is in force); narrow the targets so that one quota governs each pod"),
		},
		"a spec that does not parse: unknown, whatever the last view held": {
			v:    QuotaView{Err: errUnparsed, Conflicts: conflicts},
			want: unknownWhileUnparsed(cqv1.ConditionConflict),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			st := &cqv1.QuotaStatus{}
			v := tc.v
			v.Generation = condGen
			setConflict(st, &v)
			if diff := cmp.Diff([]metav1.Condition{tc.want}, st.Conditions, ignoreTransitions); diff != "" {
				t.Errorf("conditions (-want +got):\n%s", diff)
			}
		})
	}
}

// Every pass sets every condition, with the generation it computed, over whatever the
// status held: a condition left from an earlier pass would describe another spec.
func TestEveryConditionOnEveryPass(t *testing.T) {
	views := map[string]QuotaView{
		"within limits":               {},
		"pruning":                     {Pending: pendingTwo},
		"dry run":                     {Pending: pendingTwo, DryRun: true},
		"pinned":                      {Result: quota.Outcome{Blocked: blockedByPins}},
		"conflict":                    {Conflicts: []quota.Conflict{{Key: "perPod.checkpoints", Pod: "shop/web-0"}}},
		"a spec that does not parse":  {Err: errUnparsed},
		"a cluster quota's node rule": {Cluster: true, Nodes: &NodeView{}},
	}
	for name, v := range views {
		t.Run(name, func(t *testing.T) {
			st := previousSpec(cqv1.PrunedStatus{})
			v.Generation = condGen
			setStatus(&st, &v)
			if len(st.Conditions) != 3 {
				t.Errorf("conditions: got %d, want Ready, OverQuota and Conflict: %+v", len(st.Conditions), st.Conditions)
			}
			for _, typ := range []string{cqv1.ConditionReady, cqv1.ConditionOverQuota, cqv1.ConditionConflict} {
				c := meta.FindStatusCondition(st.Conditions, typ)
				if c == nil {
					t.Errorf("%s: not set", typ)
					continue
				}
				if c.ObservedGeneration != condGen {
					t.Errorf("%s: observedGeneration %d, want %d", typ, c.ObservedGeneration, condGen)
				}
			}
		})
	}
}

// A spec that does not parse leaves every field at its zero value but those that do not
// come from the spec: what was pruned, the conditions and the generation observed. The
// check goes over the fields of QuotaStatus, so that a field added later is covered too.
func TestUnparsedSpecClearsEveryField(t *testing.T) {
	last := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	pruned := cqv1.PrunedStatus{Checkpoints: 7, Storage: resource.MustParse("7Mi"), LastTime: &last}
	st := previousSpec(pruned)
	setStatus(&st, &QuotaView{Generation: condGen, Err: errUnparsed, Cluster: true})
	kept := map[string]bool{"ObservedGeneration": true, "Pruned": true, "Conditions": true}
	val := reflect.ValueOf(st)
	for i := range val.NumField() {
		f := val.Type().Field(i)
		if !kept[f.Name] && !val.Field(i).IsZero() {
			t.Errorf("status.%s still shows %+v, from the previous spec", f.Name, val.Field(i).Interface())
		}
	}
	if diff := cmp.Diff(pruned, st.Pruned, sameQuantity); diff != "" {
		t.Errorf("pruned (-want +got):\n%s", diff)
	}
	want := []metav1.Condition{
		condition(cqv1.ConditionReady, metav1.ConditionFalse, cqv1.ReasonInvalidSpec, errUnparsed.Error()+"; fix the field so that the quota can be enforced"),
		unknownWhileUnparsed(cqv1.ConditionOverQuota),
		unknownWhileUnparsed(cqv1.ConditionConflict),
	}
	if diff := cmp.Diff(want, st.Conditions, ignoreTransitions); diff != "" {
		t.Errorf("conditions (-want +got):\n%s", diff)
	}
}
