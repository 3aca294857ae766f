package nodeagent

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// cacheLagGrace is how long the agent trusts that a Checkpoint it created, and that its
// cache has not shown yet, still exists: after it, the agent asks the apiserver.
const cacheLagGrace = 10 * time.Second

// created holds the Checkpoints this agent created that its cache has not shown yet. A pass
// that runs before the cache's event of the agent's own create (the file watcher's events
// often come first) does not find the recorded object; rather than ask the apiserver why
// (a GET per archive while publishing, about a tenth of the agent's CPU), it waits for the
// cache. Waiting is all it changes: after cacheLagGrace the apiserver is asked as before,
// so a Checkpoint deleted before the cache ever showed it is still found out.
type created struct {
	mu  sync.Mutex
	at  map[types.UID]time.Time
	now func() time.Time
}

func newCreated(now func() time.Time) *created {
	return &created{at: map[types.UID]time.Time{}, now: now}
}

// add notes that the agent created uid. The cache's event may have come first, and then
// nothing clears the entry: entries past the grace are swept once there are many.
func (c *created) add(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.at) >= 1024 {
		for u, at := range c.at {
			if now.Sub(at) >= cacheLagGrace {
				delete(c.at, u)
			}
		}
	}
	c.at[uid] = now
}

// seen notes that the cache has shown uid (created, changed or deleted).
func (c *created) seen(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.at, uid)
}

// unseen reports whether the agent created uid less than cacheLagGrace ago and the cache
// has not shown it since.
func (c *created) unseen(uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.at[uid]
	if ok && c.now().Sub(at) >= cacheLagGrace {
		delete(c.at, uid)
		return false
	}
	return ok
}
