package controllers

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestFirstSeen(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		see    string // since(see, at), when set
		forget string
		keep   []string // keepOnly these, when set
		at     time.Time
	}
	cases := map[string]struct {
		steps []step
		want  map[string]time.Time
	}{
		"the zero value records": {
			steps: []step{{see: "a", at: t0}},
			want:  map[string]time.Time{"a": t0},
		},
		"seeing again keeps the first time": {
			steps: []step{{see: "a", at: t0}, {see: "a", at: t0.Add(time.Hour)}},
			want:  map[string]time.Time{"a": t0},
		},
		"forgetting starts the clock again": {
			steps: []step{{see: "a", at: t0}, {forget: "a"}, {see: "a", at: t0.Add(time.Hour)}},
			want:  map[string]time.Time{"a": t0.Add(time.Hour)},
		},
		"forgetting on the zero value": {
			steps: []step{{forget: "a"}},
			want:  nil,
		},
		"keepOnly forgets the others": {
			steps: []step{{see: "a", at: t0}, {see: "b", at: t0}, {keep: []string{"b", "c"}}},
			want:  map[string]time.Time{"b": t0},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var f firstSeen[string]
			for _, s := range tc.steps {
				switch {
				case s.see != "":
					if got := f.since(s.see, s.at); got != f.at[s.see] {
						t.Errorf("since(%q) = %v, recorded %v", s.see, got, f.at[s.see])
					}
				case s.forget != "":
					f.forget(s.forget)
				case s.keep != nil:
					f.keepOnly(func(k string) bool { return slices.Contains(s.keep, k) })
				}
			}
			if diff := cmp.Diff(tc.want, f.at, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("first seen (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFirstSeenEarliestAfter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := map[string]struct {
		seen map[string]time.Time
		now  time.Time
		want time.Time
	}{
		"none":                   {now: t0},
		"the earliest still due": {seen: map[string]time.Time{"a": t0, "b": t0.Add(-10 * time.Minute)}, now: t0, want: t0.Add(20 * time.Minute)},
		"past dues are left out": {seen: map[string]time.Time{"a": t0.Add(-time.Hour), "b": t0}, now: t0, want: t0.Add(30 * time.Minute)},
		"a due of now is past":   {seen: map[string]time.Time{"a": t0.Add(-30 * time.Minute)}, now: t0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := firstSeen[string]{at: tc.seen}
			if diff := cmp.Diff(tc.want, f.earliestAfter(30*time.Minute, tc.now)); diff != "" {
				t.Errorf("earliestAfter (-want +got):\n%s", diff)
			}
		})
	}
}
