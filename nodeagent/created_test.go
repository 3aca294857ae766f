package nodeagent

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestCreatedWaitsForTheCacheOnlySoLong(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC))
	c := newCreated(clk.Now)
	c.add("a")
	c.add("b")
	c.seen("b")
	if !c.unseen("a") {
		t.Error("a Checkpoint created a moment ago and not in the cache yet is not waited for")
	}
	if c.unseen("b") {
		t.Error("a Checkpoint the cache has shown is still waited for")
	}
	if c.unseen("never-created") {
		t.Error("a Checkpoint this agent did not create is waited for")
	}
	clk.Step(cacheLagGrace)
	if c.unseen("a") {
		t.Errorf("a Checkpoint the cache has not shown after %v is still waited for: the apiserver is never asked", cacheLagGrace)
	}

	// Entries whose cache event came before the create returned are swept.
	for i := range 2000 {
		c.add(types.UID(fmt.Sprint(i)))
		if i == 999 {
			clk.Step(cacheLagGrace)
		}
	}
	if n := len(c.at); n > 1024 {
		t.Errorf("%d entries kept for 2,000 creates, half of them older than the grace", n)
	}
}
