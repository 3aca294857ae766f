package controllers

import "time"

// firstSeen remembers when this manager first saw each key in some state: an archive
// orphaned, a node missing. It lives in memory only, so a restart starts every clock again,
// which only ever keeps archives longer. The zero value is ready to use; it is not safe for
// concurrent use.
type firstSeen[K comparable] struct {
	at map[K]time.Time
}

// since records now for a key seen for the first time, and returns when it was first seen.
func (f *firstSeen[K]) since(k K, now time.Time) time.Time {
	if t, ok := f.at[k]; ok {
		return t
	}
	if f.at == nil {
		f.at = map[K]time.Time{}
	}
	f.at[k] = now
	return now
}

// forget drops a key that left the state: its clock starts again if it comes back.
func (f *firstSeen[K]) forget(k K) {
	delete(f.at, k)
}

// keepOnly forgets every key that keep refuses.
func (f *firstSeen[K]) keepOnly(keep func(K) bool) {
	for k := range f.at {
		if !keep(k) {
			delete(f.at, k)
		}
	}
}

// earliestAfter returns the earliest first-seen time plus d that is after now, zero when none is.
func (f *firstSeen[K]) earliestAfter(d time.Duration, now time.Time) time.Time {
	var next time.Time
	for _, t := range f.at {
		if due := t.Add(d); due.After(now) {
			next = earliest(next, due)
		}
	}
	return next
}

// keys returns the keys it holds, in no order.
func (f *firstSeen[K]) keys() []K {
	out := make([]K, 0, len(f.at))
	for k := range f.at {
		out = append(out, k)
	}
	return out
}
