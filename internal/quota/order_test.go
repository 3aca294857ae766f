package quota

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCompare(t *testing.T) {
	at := func(ns, name string, when time.Time) *Archive {
		return &Archive{Namespace: ns, Name: name, CheckpointTime: when}
	}
	tests := map[string]struct {
		a, b *Archive
		want int
	}{
		"older first":                            {at("shop", "b", t0), at("shop", "a", t0.Add(time.Second)), -1},
		"newer after":                            {at("shop", "a", t0.Add(time.Nanosecond)), at("shop", "b", t0), 1},
		"same time: namespace breaks the tie":    {at("apps", "z", t0), at("shop", "a", t0), -1},
		"same time and namespace: name":          {at("shop", "b", t0), at("shop", "a", t0), 1},
		"the same archive":                       {at("shop", "a", t0), at("shop", "a", t0), 0},
		"unknown time sorts after any known":     {at("shop", "a", time.Time{}), at("shop", "b", t0.AddDate(300, 0, 0)), 1},
		"two unknown times: by name":             {at("shop", "a", time.Time{}), at("shop", "b", time.Time{}), -1},
		"far past and far future":                {at("shop", "b", time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC)), at("shop", "a", time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)), -1},
		"time zone does not matter":              {at("shop", "b", t0.In(time.FixedZone("CET", 3600))), at("shop", "a", t0.Add(time.Second)), -1},
		"a fetched copy before an older archive": {copyOf(at("shop", "b", t0.Add(time.Hour))), at("apps", "a", t0), -1},
		"two copies: by time":                    {copyOf(at("shop", "b", t0.Add(time.Hour))), copyOf(at("shop", "a", t0)), 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := sign(Compare(tc.a, tc.b)); got != tc.want {
				t.Errorf("Compare = %d, want %d", got, tc.want)
			}
			if got := sign(Compare(tc.b, tc.a)); got != -tc.want {
				t.Errorf("Compare reversed = %d, want %d", got, -tc.want)
			}
			if Older(tc.a, tc.b) != (tc.want < 0) {
				t.Errorf("Older = %v, want %v", Older(tc.a, tc.b), tc.want < 0)
			}
		})
	}
}

// TestLedgerOrderIsCompare checks that the order Compute sorts archives in, from time keys,
// is the order of Compare, over times that tie, are unknown or lie far away.
func TestLedgerOrderIsCompare(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	times := []time.Time{{}, t0, t0.Add(time.Nanosecond), t0.Add(time.Second), t0.Add(-time.Second + time.Nanosecond),
		time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), t0.In(time.FixedZone("CET", 3600))}
	archives := make([]Archive, 2000)
	for i := range archives {
		archives[i] = Archive{Namespace: fmt.Sprint("ns-", rnd.IntN(3)), Name: fmt.Sprint("a-", i), CheckpointTime: times[rnd.IntN(len(times))],
			Copy: rnd.IntN(10) == 0}
	}
	want := make([]int, len(archives))
	for i := range want {
		want[i] = i
	}
	slices.SortFunc(want, func(x, y int) int { return Compare(&archives[x], &archives[y]) })
	w := build(&Input{Archives: archives, Rules: everyArchive(archives, Rules{})})
	if diff := cmp.Diff(want, w.order); diff != "" {
		t.Errorf("order (-Compare +ledger):\n%s", diff)
	}
}

func copyOf(a *Archive) *Archive {
	a.Copy = true
	return a
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
