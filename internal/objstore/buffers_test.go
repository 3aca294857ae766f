package objstore

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Buffers hand out at most their bytes: a take beyond them waits until some come back,
// and gives up with its context; a buffer larger than all of them takes them all.
func TestBuffersBoundWhatUploadsHold(t *testing.T) {
	b := NewBuffers(32 << 20)
	first, err := b.take(context.Background(), 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	second, err := b.take(context.Background(), 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.tryTake(1 << 20); ok {
		t.Fatal("tryTake with every byte out took some")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.take(ctx, 1<<20); err == nil || !strings.Contains(err.Error(), "waiting for 1048576 bytes of upload buffers") {
		t.Fatalf("a take with every byte out: %v; want it to wait and give up", err)
	}
	first()
	third, err := b.take(context.Background(), 1<<20)
	if err != nil {
		t.Fatalf("a take after 16 MiB came back: %v", err)
	}
	if _, ok := b.tryTake(16 << 20); ok {
		t.Fatal("tryTake of 16 MiB with 15 MiB free took them")
	}
	second()
	third()
	if _, ok := b.tryTake(64 << 20); ok {
		t.Fatal("tryTake of more than the buffers took them")
	}
	all, err := b.take(context.Background(), 1<<30)
	if err != nil {
		t.Fatalf("a take larger than the buffers: %v; want all of them", err)
	}
	all()
	var none *Buffers
	release, err := none.take(context.Background(), 1<<30)
	if err != nil {
		t.Fatalf("no Buffers: %v; want no bound", err)
	}
	release()
}
