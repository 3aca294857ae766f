package controllers

import (
	"sync"
	"time"

	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// writeTimes remembers when each quota was last written, to space the writes of one
// quota by an interval: the status controller's status writes and the pruning pass's
// status.pruned writes. A zero value is ready to use.
type writeTimes struct {
	mu   sync.Mutex
	last map[policy.Ref]time.Time
	// sweepAt is the number of entries at which wait drops those older than an interval.
	sweepAt int
}

// wait is how long, at now, the quota's next write must wait to come interval after its
// last one; 0 or less when it need not. A write older than interval holds nothing back,
// so such entries are dropped whenever their number has doubled: the writes of every
// quota's first status are otherwise remembered for as long as the quota lives.
func (w *writeTimes) wait(ref policy.Ref, interval time.Duration, now time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.last) >= w.sweepAt {
		// Into a new map: a map keeps the room of its deleted entries.
		kept := map[policy.Ref]time.Time{}
		for r, t := range w.last {
			if now.Sub(t) < interval {
				kept[r] = t
			}
		}
		w.last, w.sweepAt = kept, 2*len(kept)+64
	}
	last, ok := w.last[ref]
	if !ok {
		return 0
	}
	return interval - now.Sub(last)
}

// wrote records a write of the quota at now.
func (w *writeTimes) wrote(ref policy.Ref, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last == nil {
		w.last = map[policy.Ref]time.Time{}
	}
	w.last[ref] = now
}

// forget forgets the quota.
func (w *writeTimes) forget(ref policy.Ref) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.last, ref)
}

// keepOnly forgets the quotas that keep does not name.
func (w *writeTimes) keepOnly(keep func(policy.Ref) bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ref := range w.last {
		if !keep(ref) {
			delete(w.last, ref)
		}
	}
}
