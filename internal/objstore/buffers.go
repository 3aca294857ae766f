package objstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
	"k8s.io/utils/clock"
)

// Buffers bounds the memory that uploads hold at once, across the stores that share it:
// each upload takes its buffer (the archive when it fits in one part, else one part) from
// it before it reads, and waits while it is spent; an upload in parts takes a second
// part's buffer too when it is free then, to send two parts at once. So many small
// archives go at once, and large ones one or two at a time.
//
// A buffer given back is kept for the next upload of its size class (a fresh one is
// zeroed, faulted in and later collected: docs/offload.md, "One pass"). A kept buffer still counts against the bytes: it goes as
// soon as an upload needs its room, or after keepIdle unused, so the bound holds and an
// idle agent holds none.
type Buffers struct {
	sem   *semaphore.Weighted
	max   int64
	clock clock.WithDelayedExecution

	mu sync.Mutex
	// idle are the buffers given back, the last one given back last.
	idle []idleBuffer
	// waiting counts the gets that wait for bytes: a buffer given back meanwhile is
	// dropped, not kept, so its bytes go to them.
	waiting int
	// trimming is set while a trim of the idle buffers is due.
	trimming bool
}

type idleBuffer struct {
	buf   []byte
	since time.Time
}

// bufferClass is the unit that buffers are sized in: a buffer for n bytes has n rounded
// up to it, so archives of nearby sizes share buffers.
const bufferClass = 1 << 20

// keepIdle is how long a buffer given back is kept unused.
const keepIdle = 30 * time.Second

// NewBuffers returns Buffers of n bytes; an upload whose buffer is larger takes them all.
func NewBuffers(n int64) *Buffers {
	return &Buffers{sem: semaphore.NewWeighted(n), max: n, clock: clock.RealClock{}}
}

// sized is the capacity of a buffer for n bytes and what it counts against the bytes.
func (b *Buffers) sized(n int64) (capacity, weight int64) {
	capacity = (n + bufferClass - 1) / bufferClass * bufferClass
	return capacity, min(capacity, b.max)
}

// get returns a buffer of n bytes, waiting for them; put gives it back.
func (b *Buffers) get(ctx context.Context, n int64) ([]byte, error) {
	if b == nil {
		return make([]byte, n), nil
	}
	capacity, weight := b.sized(n)
	if buf, ok := b.kept(capacity); ok {
		return buf[:n], nil
	}
	if !b.sem.TryAcquire(weight) {
		// Buffers kept idle make room first; one given back while this waits is
		// dropped (put), so that none is kept while a get waits.
		b.mu.Lock()
		b.waiting++
		b.dropIdle(time.Time{})
		b.mu.Unlock()
		err := b.sem.Acquire(ctx, weight)
		b.mu.Lock()
		b.waiting--
		b.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("waiting for %d bytes of upload buffers: %w", weight, err)
		}
	}
	return make([]byte, n, capacity), nil
}

// tryGet returns a buffer of n bytes if they are free now; no Buffers always have them.
func (b *Buffers) tryGet(n int64) ([]byte, bool) {
	if b == nil {
		return make([]byte, n), true
	}
	capacity, weight := b.sized(n)
	if capacity > b.max {
		return nil, false
	}
	if buf, ok := b.kept(capacity); ok {
		return buf[:n], true
	}
	if !b.sem.TryAcquire(weight) {
		b.mu.Lock()
		b.dropIdle(time.Time{})
		b.mu.Unlock()
		if !b.sem.TryAcquire(weight) {
			return nil, false
		}
	}
	return make([]byte, n, capacity), true
}

// put gives back a buffer that get or tryGet returned.
func (b *Buffers) put(buf []byte) {
	if b == nil {
		return
	}
	capacity, weight := b.sized(int64(cap(buf)))
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.waiting > 0 || capacity > b.max {
		b.sem.Release(weight)
		return
	}
	b.idle = append(b.idle, idleBuffer{buf: buf[:0], since: b.clock.Now()})
	if !b.trimming {
		b.trimming = true
		b.trimLater()
	}
}

// kept takes an idle buffer of the capacity, the one given back last.
func (b *Buffers) kept(capacity int64) ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := len(b.idle) - 1; i >= 0; i-- {
		if buf := b.idle[i].buf; int64(cap(buf)) == capacity {
			b.idle = append(b.idle[:i], b.idle[i+1:]...)
			return buf, true
		}
	}
	return nil, false
}

// dropIdle drops the idle buffers given back at or before the cutoff (all of them for
// the zero time) and gives their bytes back; b.mu is held.
func (b *Buffers) dropIdle(cutoff time.Time) {
	kept := b.idle[:0]
	for _, ib := range b.idle {
		if cutoff.IsZero() || !ib.since.After(cutoff) {
			_, weight := b.sized(int64(cap(ib.buf)))
			b.sem.Release(weight)
			continue
		}
		kept = append(kept, ib)
	}
	clear(b.idle[len(kept):])
	b.idle = kept
}

// trim drops the buffers idle for keepIdle, and comes back while some are kept (so a
// buffer goes keepIdle to twice that after its last use).
func (b *Buffers) trim() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dropIdle(b.clock.Now().Add(-keepIdle))
	if b.trimming = len(b.idle) > 0; b.trimming {
		b.trimLater()
	}
}

// trimLater trims after keepIdle, on a goroutine of its own (a fake clock runs what is
// due holding its lock, which trim's Now and AfterFunc take).
func (b *Buffers) trimLater() {
	b.clock.AfterFunc(keepIdle, func() { go b.trim() })
}
