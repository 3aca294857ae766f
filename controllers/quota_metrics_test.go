package controllers

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/resource"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// TestMetricsFollowTheStatusLimits checks that a status write leaves its quota exactly the
// series of the limits its status has, others' untouched, and that a deleted quota's go.
func TestMetricsFollowTheStatusLimits(t *testing.T) {
	s := &StatusWriter{}
	a := policy.Ref{Kind: policy.KindQuota, Namespace: "metrics-a", Name: "q"}
	b := policy.Ref{Kind: policy.KindQuota, Namespace: "metrics-b", Name: "q"}
	status := func(limits ...string) *cqv1.QuotaStatus {
		st := &cqv1.QuotaStatus{Hard: map[string]resource.Quantity{}, Used: map[string]resource.Quantity{}}
		for _, l := range limits {
			st.Hard[l], st.Used[l] = resource.MustParse("5"), resource.MustParse("1")
		}
		return st
	}
	series := func() int {
		ch := make(chan prometheus.Metric, 64)
		go func() { quotaHard.Collect(ch); quotaUsed.Collect(ch); close(ch) }()
		n := 0
		for range ch {
			n++
		}
		return n
	}
	before := series()
	s.metrics(a, status("perPod.checkpoints", "total.storage"), &QuotaView{})
	s.metrics(b, status("perPod.checkpoints"), &QuotaView{})
	if got := series() - before; got != 6 {
		t.Fatalf("%d series after writing a with 2 limits and b with 1, want 6", got)
	}
	s.metrics(a, status("total.storage"), &QuotaView{})
	if got := series() - before; got != 4 {
		t.Errorf("%d series after a lost perPod.checkpoints, want 4 (b's 2 untouched)", got)
	}
	s.forget(a)
	s.forget(b)
	if got := series() - before; got != 0 {
		t.Errorf("%d series left after both quotas were deleted, want 0", got)
	}
}
