// Package controllers holds the reconcilers of the manager: quota status for both quota kinds, pruning of Checkpoint objects, and the release of archives whose node is gone.
package controllers

import (
	"reflect"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// ViewStore is the state shared by the pruning controller, which computes, and the quota
// controllers, which report: the latest view of every quota, and what the controller
// remembers between passes. What a quota pruned is not here: it lives in the quota's
// status, which the pruning controller writes ahead of its deletes (prune_count.go).
type ViewStore struct {
	mu    sync.Mutex
	views map[policy.Ref]*QuotaView
	// gone holds Checkpoints this manager deleted, left out of usage until the cache
	// catches up, so that a stale cache never makes a pass prune more than needed.
	gone map[types.UID]time.Time
	// goneIn is the namespace that each Checkpoint of gone counts against.
	goneIn map[types.UID]string
	// changed holds the namespaces whose archives, pods or labels changed since the pruning
	// pass last read them; everything says that all did (a quota changed, a resync).
	changed    map[string]bool
	everything bool
	// released counts the Checkpoints of gone nodes marked gone, so that a pass can tell
	// that one was released while it computed.
	released uint64
	// releasing orders releases and a pass's deletes: a pass holds it from its last check
	// that no release happened until its deletes are done, and a release holds it around
	// its mark and its delete. So no release lands between the check and the deletes.
	// Releases are rare, and wait for at most one pass's deletes.
	releasing sync.Mutex
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
	// Remote and RemoteEffective are what the quota's remoteLimits found in the stores; nil
	// for a quota without remoteLimits. Their blocks, conflicts and pending prunes are in
	// Result, Conflicts and Pending with the others.
	Remote          *quota.Outcome
	RemoteEffective []policy.LimitReport
}

// pruning says that the quota's own prunes are being sent (Enforce, archives pending).
func (v *QuotaView) pruning() bool {
	return !v.DryRun && len(v.Pending) > 0
}

// PendingArchive is one archive that the quota prunes now or would prune.
type PendingArchive struct {
	Name, Scope, Key, Reason string
	Size                     int64
}

// NewViewStore returns an empty view store.
func NewViewStore() *ViewStore {
	return &ViewStore{views: map[policy.Ref]*QuotaView{}, gone: map[types.UID]time.Time{}, goneIn: map[types.UID]string{},
		changed: map[string]bool{}, everything: true}
}

// View returns the latest view of a quota, false when none was computed yet.
func (vs *ViewStore) View(ref policy.Ref) (*QuotaView, bool) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	v, ok := vs.views[ref]
	return v, ok
}

// publish replaces the views, and returns the quotas whose view changed (or is new): only
// their status needs computing again. (reflect, not equality.Semantic: a view holds field
// paths, whose fields are unexported; a view taken for changed costs one status pass.)
func (vs *ViewStore) publish(views map[policy.Ref]*QuotaView) []policy.Ref {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	var changed []policy.Ref
	for ref, v := range views {
		v.Nodes = vs.nodeViews[ref]
		if old, ok := vs.views[ref]; !ok || !reflect.DeepEqual(old, v) {
			changed = append(changed, ref)
		}
	}
	vs.views = views
	return changed
}

// setNodeViews keeps the node rules' findings for the views that publish hands out next.
func (vs *ViewStore) setNodeViews(views map[policy.Ref]*NodeView) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	vs.nodeViews = views
}

// markGone leaves a Checkpoint this manager deleted out of usage; namespace is the one it
// counts against (Checkpoint.PodNamespace), which must be computed again without it.
func (vs *ViewStore) markGone(uid types.UID, namespace string, at time.Time) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	vs.gone[uid], vs.goneIn[uid] = at, namespace
	vs.changed[namespace] = true
}

// markReleased marks a Checkpoint of a gone node gone before its delete is sent: a pass
// that reads the cache from then on leaves it out, and one that read it before sees the
// count change and computes again.
func (vs *ViewStore) markReleased(uid types.UID, namespace string, at time.Time) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	vs.gone[uid], vs.goneIn[uid] = at, namespace
	vs.changed[namespace] = true
	vs.released++
}

// holdReleases keeps releases waiting until unhold is called (releasing).
func (vs *ViewStore) holdReleases() (unhold func()) {
	vs.releasing.Lock()
	return vs.releasing.Unlock
}

// unmarkGone undoes a mark whose delete failed.
func (vs *ViewStore) unmarkGone(uid types.UID) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if ns, ok := vs.goneIn[uid]; ok {
		vs.changed[ns] = true
	}
	delete(vs.gone, uid)
	delete(vs.goneIn, uid)
}

// touch records that the archives counted against namespace, or their pods or labels,
// changed: the next pass computes that namespace again.
func (vs *ViewStore) touch(namespace string) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	vs.changed[namespace] = true
}

// touchAll records that every namespace must be computed again.
func (vs *ViewStore) touchAll() {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	vs.everything = true
}

// takeChanged returns, and forgets, what changed since the last call. A pass takes it
// before it reads the cache, so that a change it may not see stays for the next pass.
func (vs *ViewStore) takeChanged() (namespaces map[string]bool, everything bool) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	namespaces, everything = vs.changed, vs.everything
	vs.changed, vs.everything = map[string]bool{}, false
	return namespaces, everything
}

// releases is how many Checkpoints of gone nodes were marked gone so far.
func (vs *ViewStore) releases() uint64 {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	return vs.released
}

func (vs *ViewStore) isGone(uid types.UID) bool {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	_, ok := vs.gone[uid]
	return ok
}

// forgetGone drops the entries that the cache no longer needs: objects it no longer holds
// or shows as terminating. Only the entries of the namespaces read are decided.
func (vs *ViewStore) forgetGone(read func(namespace string) bool, keep func(types.UID) bool) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	for uid := range vs.gone {
		if read(vs.goneIn[uid]) && !keep(uid) {
			delete(vs.gone, uid)
			delete(vs.goneIn, uid)
		}
	}
}
