package controllers

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/types"
)

// TestPartsCurrent checks when a pass may keep the namespaces' computations of the passes
// before, and when it must compute everything.
func TestPartsCurrent(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	kept := func() partCache {
		return partCache{enabled: true, byKey: map[string]*nsPart{}, quotas: "q1", lastFull: now.Add(-time.Minute)}
	}
	cases := map[string]struct {
		cache   func() partCache
		quotas  string
		coupled bool
		resync  time.Duration
		want    bool
	}{
		"same quotas, within the resync period": {cache: kept, quotas: "q1", resync: 10 * time.Minute, want: true},
		"no resync period":                      {cache: kept, quotas: "q1", want: true},
		"a quota changed":                       {cache: kept, quotas: "q2", resync: 10 * time.Minute},
		"a limit couples namespaces":            {cache: kept, quotas: "q1", coupled: true, resync: 10 * time.Minute},
		"the resync period is over":             {cache: kept, quotas: "q1", resync: time.Minute},
		"no pass kept anything yet": {cache: func() partCache {
			c := kept()
			c.byKey = nil
			return c
		}, quotas: "q1", resync: 10 * time.Minute},
		"built without the index": {cache: func() partCache {
			c := kept()
			c.enabled = false
			return c
		}, quotas: "q1", resync: 10 * time.Minute},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := tc.cache()
			s := &passScope{now: now, quotas: tc.quotas, coupled: tc.coupled}
			if diff := cmp.Diff(tc.want, c.current(s, tc.resync)); diff != "" {
				t.Errorf("current (-want +got):\n%s", diff)
			}
		})
	}
}

// TestViewStoreChanged checks the set of namespaces a pass computes again: what events and the
// manager's own deletes mark, taken once.
func TestViewStoreChanged(t *testing.T) {
	e := NewViewStore()
	if _, all := e.takeChanged(); !all {
		t.Error("a new view store's first pass computes everything")
	}
	e.touch("shop")
	e.markGone("uid-1", "web", time.Now())
	e.markReleased("uid-2", "batch", time.Now())
	got, all := e.takeChanged()
	if diff := cmp.Diff(map[string]bool{"shop": true, "web": true, "batch": true}, got); diff != "" || all {
		t.Errorf("changed (-want +got):\n%s, everything %v", diff, all)
	}
	if got, all := e.takeChanged(); len(got) != 0 || all {
		t.Errorf("taken twice: %v, everything %v", got, all)
	}
	e.unmarkGone("uid-2")
	e.touchAll()
	got, all = e.takeChanged()
	if diff := cmp.Diff(map[string]bool{"batch": true}, got); diff != "" || !all {
		t.Errorf("after unmarkGone and touchAll (-want +got):\n%s, everything %v", diff, all)
	}
	// Only the namespaces a pass read decide what the deleted set forgets.
	e.forgetGone(func(ns string) bool { return ns == "other" }, func(types.UID) bool { return false })
	if !e.isGone("uid-1") {
		t.Error("a pass that did not read namespace web forgot its deleted Checkpoint")
	}
	e.forgetGone(func(ns string) bool { return ns == "web" }, func(types.UID) bool { return false })
	if e.isGone("uid-1") {
		t.Error("a pass that read namespace web kept a Checkpoint the cache no longer holds")
	}
}
