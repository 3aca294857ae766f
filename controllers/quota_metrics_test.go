package controllers

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/api/resource"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// TestQuotaMetricsFollowTheStatus checks that a quota's series are those of its latest
// status, others' untouched, that status writes are counted, and that a deleted quota's
// series go.
func TestQuotaMetricsFollowTheStatus(t *testing.T) {
	c := &quotaCollector{byRef: map[policy.Ref]*quotaValues{}}
	a := policy.Ref{Kind: policy.KindQuota, Namespace: "shop", Name: "a"}
	b := policy.Ref{Kind: policy.KindClusterQuota, Name: "b"}
	status := func(limits ...string) *cqv1.QuotaStatus {
		st := &cqv1.QuotaStatus{Hard: map[string]resource.Quantity{}, Used: map[string]resource.Quantity{}}
		for _, l := range limits {
			st.Hard[l], st.Used[l] = resource.MustParse("5"), resource.MustParse("1")
		}
		return st
	}
	blocked := &QuotaView{Result: quota.Outcome{Blocked: []quota.Block{{Pinned: []string{"x", "y"}}, {Pinned: []string{"x"}}}}}
	c.set(a, status("perPod.checkpoints", "total.storage"), &QuotaView{})
	c.set(b, status("perPod.checkpoints"), blocked)
	c.wrote(a)
	c.set(a, status("total.storage"), &QuotaView{})
	c.wrote(a)
	want := []string{
		"checkpointquota_quota_blocked_limits ClusterCheckpointQuota//b 2",
		"checkpointquota_quota_blocked_limits CheckpointQuota/shop/a 0",
		"checkpointquota_quota_blocking_pinned_checkpoints ClusterCheckpointQuota//b 2",
		"checkpointquota_quota_blocking_pinned_checkpoints CheckpointQuota/shop/a 0",
		"checkpointquota_quota_conflicts ClusterCheckpointQuota//b 0",
		"checkpointquota_quota_conflicts CheckpointQuota/shop/a 0",
		"checkpointquota_quota_hard ClusterCheckpointQuota//b/perPod.checkpoints 5",
		"checkpointquota_quota_hard CheckpointQuota/shop/a/total.storage 5",
		"checkpointquota_quota_used ClusterCheckpointQuota//b/perPod.checkpoints 1",
		"checkpointquota_quota_used CheckpointQuota/shop/a/total.storage 1",
		"checkpointquota_status_writes_total ClusterCheckpointQuota//b 0",
		"checkpointquota_status_writes_total CheckpointQuota/shop/a 2",
	}
	sort.Strings(want)
	if diff := cmp.Diff(want, collected(t, c)); diff != "" {
		t.Errorf("series (-want +got):\n%s", diff)
	}
	c.forget(a)
	c.forget(b)
	if got := collected(t, c); len(got) != 0 {
		t.Errorf("series left after both quotas were deleted: %v", got)
	}
}

// collected reads "name labels value" of every series c sends, sorted.
func collected(t *testing.T, c prometheus.Collector) []string {
	t.Helper()
	ch := make(chan prometheus.Metric)
	go func() { c.Collect(ch); close(ch) }()
	var out []string
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		byName := map[string]string{}
		for _, l := range pb.GetLabel() {
			byName[l.GetName()] = l.GetValue()
		}
		labels := []string{byName["kind"], byName["namespace"], byName["name"]}
		if l, ok := byName["limit"]; ok {
			labels = append(labels, l)
		}
		name := m.Desc().String()
		name = name[strings.Index(name, `"`)+1:]
		name = name[:strings.Index(name, `"`)]
		v := pb.GetGauge().GetValue() + pb.GetCounter().GetValue()
		out = append(out, name+" "+strings.Join(labels, "/")+" "+fmt.Sprint(v))
	}
	sort.Strings(out)
	return out
}
