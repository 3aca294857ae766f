package controllers

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

// wakeups triggers a controller on the injected clock: periodically for the full resync,
// and when the next archive reaches its maxAge or grace period, or a node its grace
// period. A RequeueAfter would follow the wall clock, which a test's fake clock cannot move.
type wakeups struct {
	clock  clock.WithTicker
	period time.Duration
	events chan event.GenericEvent
	next   chan time.Time
}

func newWakeups(c clock.WithTicker, period time.Duration) *wakeups {
	return &wakeups{clock: c, period: period, events: make(chan event.GenericEvent, 1), next: make(chan time.Time, 1)}
}

// at asks for a pass at t (replacing an earlier request); zero asks for none. A reconciler
// built without SetupWithManager has no wakeups, and arms nothing.
func (w *wakeups) at(t time.Time) {
	if w == nil {
		return
	}
	for {
		select {
		case w.next <- t:
			return
		default:
			select {
			case <-w.next:
			default:
			}
		}
	}
}

// NeedLeaderElection: only the leader prunes.
func (w *wakeups) NeedLeaderElection() bool { return true }

// Start runs until ctx ends.
func (w *wakeups) Start(ctx context.Context) error {
	var resync <-chan time.Time
	if w.period > 0 {
		t := w.clock.NewTicker(w.period)
		defer t.Stop()
		resync = t.C()
	}
	var timer clock.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case t := <-w.next:
			if timer != nil {
				timer.Stop()
				timer, fire = nil, nil
			}
			if t.IsZero() {
				continue
			}
			if d := t.Sub(w.clock.Now()); d > 0 {
				timer = w.clock.NewTimer(d)
				fire = timer.C()
				continue
			}
		case <-resync:
		case <-fire:
			timer, fire = nil, nil
		}
		select {
		case w.events <- event.GenericEvent{Object: &metav1.PartialObjectMetadata{}}:
		default: // a pass is already queued
		}
	}
}
