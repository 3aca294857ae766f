package objstore

import (
	"context"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// Buffers hand out at most their bytes: a get beyond them waits until some come back,
// and gives up with its context; a buffer larger than all of them takes them all.
func TestBuffersBoundWhatUploadsHold(t *testing.T) {
	b := NewBuffers(32 << 20)
	first, err := b.get(context.Background(), 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	second, err := b.get(context.Background(), 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.tryGet(1 << 20); ok {
		t.Fatal("tryGet with every byte out got some")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.get(ctx, 1<<20); err == nil || !strings.Contains(err.Error(), "waiting for 1048576 bytes of upload buffers") {
		t.Fatalf("a get with every byte out: %v; want it to wait and give up", err)
	}
	b.put(first) // kept idle, still counted: a get of another size drops it to make room
	third, err := b.get(context.Background(), 1<<20)
	if err != nil {
		t.Fatalf("a get after 16 MiB came back: %v", err)
	}
	if _, ok := b.tryGet(16 << 20); ok {
		t.Fatal("tryGet of 16 MiB with 15 MiB free got them")
	}
	b.put(second)
	b.put(third)
	if _, ok := b.tryGet(64 << 20); ok {
		t.Fatal("tryGet of more than the buffers got them")
	}
	all, err := b.get(context.Background(), 1<<30)
	if err != nil {
		t.Fatalf("a get larger than the buffers: %v; want all of them", err)
	}
	if len(all) != 1<<30 {
		t.Fatalf("a get of 1 GiB returned %d bytes", len(all))
	}
	b.put(all)
	var none *Buffers
	buf, err := none.get(context.Background(), 1<<20)
	if err != nil || len(buf) != 1<<20 {
		t.Fatalf("no Buffers: %d bytes, %v; want no bound", len(buf), err)
	}
	none.put(buf)
}

// A buffer given back serves the next get of its size class; it counts against the bytes
// while it is kept, goes when a get needs its room (that get does not wait for it), and
// goes after keepIdle unused.
func TestBuffersKeepWhatComesBack(t *testing.T) {
	b := NewBuffers(32 << 20)
	clock := clocktesting.NewFakeClock(time.Now())
	b.clock = clock
	ctx := context.Background()
	first, err := b.get(ctx, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	first[0] = 1
	b.put(first)
	again, err := b.get(ctx, 1<<20-100) // same class: the same buffer, its bytes as left
	if err != nil {
		t.Fatal(err)
	}
	if &again[0] != &first[0] || len(again) != 1<<20-100 {
		t.Fatalf("a get after a buffer of its class came back got a new one (%d bytes)", len(again))
	}
	b.put(again)
	if _, ok := b.tryGet(32 << 20); !ok {
		t.Fatal("tryGet of every byte with 1 MiB kept idle: want the idle buffer dropped for it")
	}
	b = NewBuffers(32 << 20)
	b.clock = clock
	part, err := b.get(ctx, 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	b.put(part)
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	all, err := b.get(waitCtx, 32<<20) // only the idle buffer stands in its way
	if err != nil {
		t.Fatalf("a get of every byte with 16 MiB kept idle: %v; want the idle buffer dropped for it", err)
	}
	b.put(all)
	if idle := b.idleCount(); idle != 1 {
		t.Fatalf("%d buffers idle after one came back; want 1", idle)
	}
	clock.Step(keepIdle - time.Second)
	if idle := b.idleCount(); idle != 1 {
		t.Fatalf("%d buffers idle before keepIdle passed; want 1", idle)
	}
	clock.Step(2 * keepIdle)
	deadline := time.Now().Add(5 * time.Second)
	for b.idleCount() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a buffer unused for twice keepIdle is still kept")
		}
		time.Sleep(time.Millisecond) // the fake clock runs the trim in its own goroutine
	}
	if _, ok := b.tryGet(32 << 20); !ok {
		t.Fatal("tryGet of every byte after the idle buffer went: want them")
	}
}

func (b *Buffers) idleCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.idle)
}
