// Package controllers holds the reconcilers of the manager: quota status for both quota kinds, pruning of Checkpoint objects, and the release of archives whose node is gone.
package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// Engine is the state shared by the pruning controller, which computes, and the quota
// controllers, which report: the latest view of every quota, and what the controller
// remembers between passes. What a quota pruned is not here: it lives in the quota's
// status, which the pruning controller writes ahead of its deletes (prune_count.go).
type Engine struct {
	mu    sync.Mutex
	views map[policy.Ref]*QuotaView
	// gone holds Checkpoints this manager deleted, left out of usage until the cache
	// catches up, so that a stale cache never makes a pass prune more than needed.
	gone map[types.UID]time.Time
	// released counts the Checkpoints of gone nodes marked gone, so that a pass can tell
	// that one was released while it computed.
	released uint64
	// nodeViews are the node rules' findings of the latest pass, by cluster quota.
	nodeViews map[policy.Ref]*NodeView
}

// QuotaView is what the last computation found for one quota.
type QuotaView struct {
	Ref policy.Ref
	// Generation is the quota's generation that the computation used.
	Generation int64
	// Err is set when the quota could not be read (a value that does not parse).
	Err       error
	Result    quota.Outcome
	Pending   []PendingArchive
	Conflicts []quota.Conflict
	Effective []policy.LimitReport
	DryRun    bool
	Cluster   bool
	// Nodes is set for a cluster quota that sets node rules.
	Nodes *NodeView
}

// PendingArchive is one archive that the quota prunes now or would prune.
type PendingArchive struct {
	Name, Scope, Key, Reason string
	Size                     int64
}

// NewEngine returns an empty engine.
func NewEngine() *Engine {
	return &Engine{views: map[policy.Ref]*QuotaView{}, gone: map[types.UID]time.Time{}}
}

// View returns the latest view of a quota, false when none was computed yet.
func (e *Engine) View(ref policy.Ref) (*QuotaView, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.views[ref]
	return v, ok
}

func (e *Engine) publish(views map[policy.Ref]*QuotaView) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for ref, v := range views {
		v.Nodes = e.nodeViews[ref]
	}
	e.views = views
}

// setNodeViews keeps the node rules' findings for the views that publish hands out next.
func (e *Engine) setNodeViews(views map[policy.Ref]*NodeView) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.nodeViews = views
}

func (e *Engine) markGone(uid types.UID, at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gone[uid] = at
}

// markReleased marks a Checkpoint of a gone node gone before its delete is sent: a pass
// that reads the cache from then on leaves it out, and one that read it before sees the
// count change and computes again.
func (e *Engine) markReleased(uid types.UID, at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gone[uid] = at
	e.released++
}

// unmarkGone undoes a mark whose delete failed.
func (e *Engine) unmarkGone(uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.gone, uid)
}

// releases is how many Checkpoints of gone nodes were marked gone so far.
func (e *Engine) releases() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.released
}

func (e *Engine) isGone(uid types.UID) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.gone[uid]
	return ok
}

// forgetGone drops the entries that the cache no longer needs: objects it no longer holds
// or shows as terminating.
func (e *Engine) forgetGone(keep func(types.UID) bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for uid := range e.gone {
		if !keep(uid) {
			delete(e.gone, uid)
		}
	}
}
