package controllers

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// ignoreTransitions leaves out what meta.SetStatusCondition stamps with the wall clock.
var ignoreTransitions = cmpopts.IgnoreFields(metav1.Condition{}, "LastTransitionTime")

func inForce(limit, value string) cqv1.EffectiveLimit {
	return cqv1.EffectiveLimit{Limit: limit, Value: value, State: cqv1.LimitInForce}
}

// reports are the limits of cq as the pass reports them, in force unless states says otherwise.
func reports(t *testing.T, cq *cqv1.CheckpointQuota, states map[string]cqv1.LimitState) []policy.LimitReport {
	t.Helper()
	q, err := policy.FromCheckpointQuota(cq)
	if err != nil {
		t.Fatal(err)
	}
	var out []policy.LimitReport
	for _, k := range q.Keys() {
		l := q.Limit(k)
		st, ok := states[l.Name]
		if !ok {
			st = cqv1.LimitInForce
		}
		out = append(out, policy.NewLimitReport(&l, st, nil, nil, nil))
	}
	return out
}

func quantities(kv ...string) map[string]resource.Quantity {
	out := map[string]resource.Quantity{}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = resource.MustParse(kv[i+1])
	}
	return out
}

// Everything but the conditions and the usage table, which have their own tests.
func TestSetStatus(t *testing.T) {
	last := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	asRead := cqv1.PrunedStatus{Checkpoints: 7, Storage: resource.MustParse("7Mi"), LastTime: &last}
	var many []PendingArchive
	for i := range quota.MaxNames + 1 {
		many = append(many, PendingArchive{Name: fmt.Sprintf("c-%02d", i), Size: 1 << 20})
	}
	scopes := quota.Outcome{
		Namespaces: []quota.ScopeUsage{{Namespace: "shop", Checkpoints: 3, Bytes: 3 << 20}},
		Pods:       []quota.ScopeUsage{{Namespace: "shop", Pod: "web-0", Checkpoints: 3, Bytes: 3 << 20}},
		Containers: []quota.ScopeUsage{{Namespace: "shop", Pod: "web-0", Container: "app", Checkpoints: 3, Bytes: 3 << 20}},
	}
	shopUsage := cqv1.Usage{Checkpoints: 3, Storage: resource.MustParse("3Mi")}
	cases := map[string]struct {
		st   cqv1.QuotaStatus
		v    QuotaView
		want cqv1.QuotaStatus
	}{
		"a spec that does not parse shows nothing of the previous spec": {
			st:   previousSpec(asRead),
			v:    QuotaView{Generation: 2, Err: errors.New("spec.limits.total.storage: bad")},
			want: cqv1.QuotaStatus{ObservedGeneration: 2, Pruned: asRead},
		},
		"pruned stays as read, whatever the view": {
			st: cqv1.QuotaStatus{Pruned: asRead},
			v:  QuotaView{Generation: 3, Result: quota.Outcome{Checkpoints: 2, Bytes: 2 << 20}},
			want: cqv1.QuotaStatus{ObservedGeneration: 3, Hard: quantities(), Used: quantities(), Pruned: asRead,
				Summary: cqv1.UsageSummary{Checkpoints: "2", Storage: "2Mi"}},
		},
		"hard and used in the units the limit was written in; overridden limits, maxAge and orphans left out": {
			v: QuotaView{Generation: 1, Result: quota.Outcome{
				Limits: []quota.LimitUsage{{Name: "perPod.checkpoints", Used: 4}, {Name: "total.storage", Used: 500_000_000},
					{Name: "perContainer.storage", Used: 768 << 20}},
				MaxSize: &quota.LimitUsage{Name: "maxCheckpointSize", Used: 1 << 30}},
				Effective: reports(t, builder.Quota("q", "shop").PerPod(5, "1Gi").Total(-1, "1000M").PerContainer(-1, "1024Mi").
					MaxCheckpointSize("2Gi").MaxAge("168h").Orphans(cqv1.OrphanDelete, "10m").Obj(),
					map[string]cqv1.LimitState{"perContainer.storage": cqv1.LimitPartlyOverridden, "perPod.storage": cqv1.LimitOverridden})},
			want: cqv1.QuotaStatus{ObservedGeneration: 1,
				Hard:    quantities("perPod.checkpoints", "5", "total.storage", "1G", "perContainer.storage", "1Gi", "maxCheckpointSize", "2Gi"),
				Used:    quantities("perPod.checkpoints", "4", "total.storage", "500M", "perContainer.storage", "768Mi", "maxCheckpointSize", "1Gi"),
				Summary: cqv1.UsageSummary{Checkpoints: "4/5", Storage: "768Mi/1Gi"}},
		},
		"namespaces for a cluster quota only": {
			v: QuotaView{Generation: 1, Cluster: true, Result: scopes},
			want: cqv1.QuotaStatus{ObservedGeneration: 1, Hard: quantities(), Used: quantities(),
				Summary:    cqv1.UsageSummary{Checkpoints: "0", Storage: "0"},
				Namespaces: []cqv1.NamespaceUsage{{Namespace: "shop", Usage: shopUsage}},
				Pods:       []cqv1.PodUsage{{Namespace: "shop", Pod: "web-0", Usage: shopUsage}},
				Containers: []cqv1.ContainerUsage{{Namespace: "shop", Pod: "web-0", Container: "app", Usage: shopUsage}}},
		},
		"a namespaced quota lists pods and containers, and forgets the scopes of the last pass": {
			st: cqv1.QuotaStatus{Namespaces: []cqv1.NamespaceUsage{{Namespace: "old"}}, Pods: []cqv1.PodUsage{{Pod: "old"}}},
			v:  QuotaView{Generation: 1, Result: scopes},
			want: cqv1.QuotaStatus{ObservedGeneration: 1, Hard: quantities(), Used: quantities(),
				Summary:    cqv1.UsageSummary{Checkpoints: "0", Storage: "0"},
				Pods:       []cqv1.PodUsage{{Namespace: "shop", Pod: "web-0", Usage: shopUsage}},
				Containers: []cqv1.ContainerUsage{{Namespace: "shop", Pod: "web-0", Container: "app", Usage: shopUsage}}},
		},
		"pending prune counts every archive and names the first MaxNames": {
			v: QuotaView{Generation: 1, Pending: many},
			want: cqv1.QuotaStatus{ObservedGeneration: 1, Hard: quantities(), Used: quantities(),
				Summary: cqv1.UsageSummary{Checkpoints: "0", Storage: "0"},
				PendingPrune: &cqv1.PendingPrune{Checkpoints: int64(len(many)), Storage: resource.MustParse("51Mi"),
					Names: func() (n []string) {
						for _, p := range many[:quota.MaxNames] {
							n = append(n, p.Name)
						}
						return n
					}()}},
		},
		"no pending prune clears the last one": {
			st: cqv1.QuotaStatus{PendingPrune: &cqv1.PendingPrune{Checkpoints: 1}},
			v:  QuotaView{Generation: 1},
			want: cqv1.QuotaStatus{ObservedGeneration: 1, Hard: quantities(), Used: quantities(),
				Summary: cqv1.UsageSummary{Checkpoints: "0", Storage: "0"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			st := tc.st.DeepCopy()
			v := tc.v
			if v.Err == nil {
				tc.want.EffectivePolicy = policy.APILimits(v.Effective)
			}
			setStatus(st, &v)
			if diff := cmp.Diff(tc.want, *st, sameQuantity, cmpopts.EquateEmpty(),
				cmpopts.IgnoreFields(cqv1.QuotaStatus{}, "Conditions", "UsageTable")); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBlockedMessage(t *testing.T) {
	var names []string
	for i := range 12 {
		names = append(names, fmt.Sprintf("c-%02d", i))
	}
	block := func(key, scope string, used, hard int64, pinned ...string) quota.Block {
		return quota.Block{Rule: key, Scope: scope, Used: used, Hard: hard, Pinned: pinned}
	}
	const tail = "; unpin them (spec.pinned, .keep marker) or raise the limit"
	cases := map[string]struct {
		blocks []quota.Block
		want   string
	}{
		"storage in bytes, the quota's targets for a scope-less limit": {
			blocks: []quota.Block{block("total.storage", "", 3<<20, 2<<20, "c-1")},
			want:   "total.storage of the quota's targets stays at 3Mi/2Mi: pinned checkpoints c-1 cannot be pruned" + tail,
		},
		"ten names at most": {
			blocks: []quota.Block{block("perPod.checkpoints", "shop/web-0", 12, 2, names...)},
			want: "perPod.checkpoints of shop/web-0 stays at 12/2: pinned checkpoints " + strings.Join(names[:10], ", ") +
				" and 2 more cannot be pruned" + tail,
		},
		"archives of gone pods that a label selector might govern": {
			blocks: []quota.Block{{Rule: "perPod.checkpoints", Scope: "shop/db-0", Used: 3, Hard: 1, Held: []string{"c-1", "c-2"},
				HeldBecause: quota.HeldByLabels}},
			want: "perPod.checkpoints of shop/db-0 stays at 3/1: checkpoints c-1, c-2 cannot be pruned: their pods are gone and " +
				"a quota that selects pods by label might govern them (delete those not needed: kubectl delete checkpoint)",
		},
		"pinned and held": {
			blocks: []quota.Block{{Rule: "perPod.checkpoints", Scope: "shop/db-0", Used: 3, Hard: 1, Pinned: []string{"c-0"}, Held: []string{"c-1"},
				HeldBecause: quota.HeldByUnparsed(policy.Ref{Kind: policy.KindQuota, Namespace: "shop", Name: "team"})}},
			want: "perPod.checkpoints of shop/db-0 stays at 3/1: pinned checkpoints c-0 cannot be pruned, and checkpoints c-1 cannot be pruned: " +
				"CheckpointQuota shop/team, which might govern them, does not parse (fix its spec)" + tail,
		},
		"five blocks at most": {
			blocks: []quota.Block{block("a.checkpoints", "s", 2, 1, "c"), block("b.checkpoints", "s", 2, 1, "c"), block("c.checkpoints", "s", 2, 1, "c"),
				block("d.checkpoints", "s", 2, 1, "c"), block("e.checkpoints", "s", 2, 1, "c"), block("f.checkpoints", "s", 2, 1, "c"),
				block("g.checkpoints", "s", 2, 1, "c")},
			want: "a.checkpoints of s stays at 2/1: pinned checkpoints c cannot be pruned; b.checkpoints of s stays at 2/1: pinned checkpoints c cannot be pruned; " +
				"c.checkpoints of s stays at 2/1: pinned checkpoints c cannot be pruned; d.checkpoints of s stays at 2/1: pinned checkpoints c cannot be pruned; " +
				"e.checkpoints of s stays at 2/1: pinned checkpoints c cannot be pruned; and 2 more" + tail,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, blockedMessage(tc.blocks)); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPendingSummary(t *testing.T) {
	var eleven []PendingArchive
	for i := range 11 {
		eleven = append(eleven, PendingArchive{Name: fmt.Sprintf("c-%02d", i), Size: 512 << 10})
	}
	cases := map[string]struct {
		pending []PendingArchive
		want    string
	}{
		"every name":        {pending: eleven[:2], want: "2 checkpoints (1Mi): c-00, c-01"},
		"ten names and ...": {pending: eleven, want: "11 checkpoints (5.5Mi): c-00, c-01, c-02, c-03, c-04, c-05, c-06, c-07, c-08, c-09, ..."},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, pendingSummary(tc.pending)); diff != "" {
				t.Errorf("summary (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSummary(t *testing.T) {
	cases := map[string]struct {
		hard, used map[string]resource.Quantity
		r          quota.Outcome
		remote     *quota.Outcome
		want       cqv1.UsageSummary
	}{
		"no limit: the usage alone": {
			r:    quota.Outcome{Checkpoints: 12, Bytes: 3 << 30},
			want: cqv1.UsageSummary{Checkpoints: "12", Storage: "3Gi"},
		},
		"the fullest limit of each resource": {
			hard: quantities("total.checkpoints", "10", "perPod.checkpoints", "4", "total.storage", "1Gi", "maxCheckpointSize", "100Mi"),
			used: quantities("total.checkpoints", "9", "perPod.checkpoints", "2", "total.storage", "512Mi", "maxCheckpointSize", "90Mi"),
			want: cqv1.UsageSummary{Checkpoints: "9/10", Storage: "512Mi/1Gi"},
		},
		"a limit of 0 is the fullest": {
			hard: quantities("total.checkpoints", "10", "perPod.checkpoints", "0"),
			used: quantities("total.checkpoints", "10", "perPod.checkpoints", "0"),
			want: cqv1.UsageSummary{Checkpoints: "0/0", Storage: "0"},
		},
		"a tie goes to the smaller text, the same on every pass": {
			hard: quantities("total.checkpoints", "10", "perPod.checkpoints", "4"),
			used: quantities("total.checkpoints", "5", "perPod.checkpoints", "2"),
			want: cqv1.UsageSummary{Checkpoints: "2/4", Storage: "0"},
		},
		"remote limits: a summary of their own, apart from the nodes'": {
			hard:   quantities("total.checkpoints", "10", "remoteLimits.total.checkpoints", "3", "remoteLimits.perPod.storage", "1Gi"),
			used:   quantities("total.checkpoints", "1", "remoteLimits.total.checkpoints", "3", "remoteLimits.perPod.storage", "100Mi"),
			r:      quota.Outcome{Checkpoints: 1, Bytes: 5},
			remote: &quota.Outcome{Checkpoints: 3, Bytes: 100 << 20},
			want:   cqv1.UsageSummary{Checkpoints: "1/10", Storage: "5", Remote: "3/3, 100Mi/1Gi"},
		},
		"remote limits without a count: the stored count alone": {
			hard:   quantities("remoteLimits.maxAge", "0"),
			remote: &quota.Outcome{Checkpoints: 2, Bytes: 2 << 30},
			want:   cqv1.UsageSummary{Checkpoints: "0", Storage: "0", Remote: "2, 2Gi"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			st := &cqv1.QuotaStatus{Hard: tc.hard, Used: tc.used}
			if diff := cmp.Diff(tc.want, summary(st, &tc.r, tc.remote)); diff != "" {
				t.Errorf("summary (-want +got):\n%s", diff)
			}
		})
	}
}
