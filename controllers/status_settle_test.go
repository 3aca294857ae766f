package controllers

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

func TestSettle(t *testing.T) {
	pruning := &QuotaView{Pending: []PendingArchive{{Name: "c-1"}}}
	cases := map[string]struct {
		view     *QuotaView
		observed bool
		// after are the seconds since the first call at which settle is called again.
		after []int
		want  []time.Duration
	}{
		"prunes in flight: held back for one interval": {view: pruning, observed: true, after: []int{0, 4, 10, 11},
			want: []time.Duration{10 * time.Second, 10 * time.Second, 6 * time.Second, 0, -time.Second}},
		"nothing to prune":          {view: &QuotaView{}, observed: true, want: []time.Duration{0}},
		"DryRun prunes nothing":     {view: &QuotaView{DryRun: true, Pending: pruning.Pending}, observed: true, want: []time.Duration{0}},
		"a new generation is shown": {view: pruning, observed: false, want: []time.Duration{0}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			clock := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
			start := clock.Now()
			s := &StatusWriter{Interval: 10 * time.Second, RateClock: clock}
			ref := policy.Ref{Kind: policy.KindQuota, Namespace: "shop", Name: "q"}
			got := []time.Duration{s.settle(ref, tc.view, tc.observed)}
			for _, sec := range tc.after {
				clock.SetTime(start.Add(time.Duration(sec) * time.Second))
				got = append(got, s.settle(ref, tc.view, tc.observed))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("held back (-want +got):\n%s", diff)
			}
		})
	}
}
