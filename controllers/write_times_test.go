package controllers

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// TestCountSpacing checks that the pass leaves out of its deletes, for the rest of the
// interval, the prunes of a quota whose status.pruned it wrote less than an interval ago,
// and says when to come back; other quotas' prunes go ahead.
func TestCountSpacing(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	a := policy.Ref{Kind: policy.KindQuota, Namespace: "shop", Name: "a"}
	b := policy.Ref{Kind: policy.KindClusterQuota, Name: "b"}
	w := &passScope{policies: []*policy.Quota{{Ref: a}, {Ref: b}}}
	plan := []quota.Prune{{Archive: 0, Quota: 0}, {Archive: 1, Quota: 1}, {Archive: 2, Quota: 0}}
	cases := map[string]struct {
		// written are the quotas whose counter was written, and how long before now.
		written  map[int]time.Duration
		interval time.Duration
		want     []int
		wait     time.Duration
	}{
		"nothing written yet":       {interval: time.Second, want: []int{0, 1, 2}},
		"a written 400ms ago":       {written: map[int]time.Duration{0: 400 * time.Millisecond}, interval: time.Second, want: []int{1}, wait: 600 * time.Millisecond},
		"both written, b earlier":   {written: map[int]time.Duration{0: 100 * time.Millisecond, 1: 700 * time.Millisecond}, interval: time.Second, want: []int{}, wait: 300 * time.Millisecond},
		"a written an interval ago": {written: map[int]time.Duration{0: time.Second}, interval: time.Second, want: []int{0, 1, 2}},
		"no interval":               {written: map[int]time.Duration{0: 0}, want: []int{0, 1, 2}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var c countTimes
			for qi, ago := range tc.written {
				c.counted(w, map[int]prunedTally{qi: {count: 1}}, now.Add(-ago))
			}
			got, wait := c.spaced(w, plan, tc.interval, now)
			archives := []int{}
			for _, p := range got {
				archives = append(archives, p.Archive)
			}
			if diff := cmp.Diff(tc.want, archives); diff != "" {
				t.Errorf("archives pruned now (-want +got):\n%s", diff)
			}
			if wait != tc.wait {
				t.Errorf("wait %v, want %v", wait, tc.wait)
			}
		})
	}
}

// TestCountSpacingForgetsGoneQuotas checks that a quota no longer in the pass is forgotten.
func TestCountSpacingForgetsGoneQuotas(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	a := policy.Ref{Kind: policy.KindQuota, Namespace: "shop", Name: "a"}
	var c countTimes
	c.counted(&passScope{policies: []*policy.Quota{{Ref: a}}}, map[int]prunedTally{0: {count: 1}}, now)
	c.counted(&passScope{}, nil, now)
	if wait := c.wait(a, time.Second, now); wait != 0 {
		t.Errorf("a quota gone from the pass still waits %v", wait)
	}
}

// TestWriteTimesForgetOldWrites checks that the writes older than an interval, which hold
// nothing back, are not remembered for as long as their quotas live, and that a recent one
// still holds its quota's next write back.
func TestWriteTimesForgetOldWrites(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var w writeTimes
	for i := range 1000 {
		w.wrote(policy.Ref{Kind: policy.KindQuota, Namespace: "shop", Name: fmt.Sprint(i)}, now.Add(-time.Minute))
	}
	recent := policy.Ref{Kind: policy.KindQuota, Namespace: "shop", Name: "recent"}
	w.wrote(recent, now.Add(-100*time.Millisecond))
	if wait := w.wait(recent, time.Second, now); wait != 900*time.Millisecond {
		t.Errorf("the recent write holds the next back %s, want 900ms", wait)
	}
	if len(w.last) != 1 {
		t.Errorf("%d writes remembered, want the recent one alone", len(w.last))
	}
}
