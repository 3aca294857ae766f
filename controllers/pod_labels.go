package controllers

import (
	"context"
	"maps"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// goneLabels remembers the labels each deleted pod had when it went, by UID, so that its
// archives stay under the quotas that selected it by label instead of being held
// (quota.Rules.Held) for want of its labels. It lives in memory: a manager started after
// a pod went does not know its labels, and holds its archives.
type goneLabels struct {
	mu    sync.Mutex
	byUID map[types.UID]map[string]string
}

// went remembers the labels of a pod that is gone.
func (g *goneLabels) went(uid types.UID, labels map[string]string) {
	if uid == "" {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.byUID == nil {
		g.byUID = map[types.UID]map[string]string{}
	}
	g.byUID[uid] = maps.Clone(labels)
	if g.byUID[uid] == nil {
		g.byUID[uid] = map[string]string{}
	}
}

// of returns the labels the pod with this UID had when it went, nil when not known.
func (g *goneLabels) of(uid string) map[string]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.byUID[types.UID(uid)]
}

// keepOnly forgets the pods for which keep is false.
func (g *goneLabels) keepOnly(keep func(types.UID) bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	maps.DeleteFunc(g.byUID, func(uid types.UID, _ map[string]string) bool { return !keep(uid) })
}

// podLabels is the pass's quota.Labels.Pod: the labels of the archive's pod while it is in
// the cache (quota.PodLabelsFrom), else the labels it had when it went, if this manager
// saw it go.
func (r *PruneReconciler) podLabels(s *passScope) func(a *quota.Archive) map[string]string {
	cached := quota.PodLabelsFrom(s.pods)
	return func(a *quota.Archive) map[string]string {
		if l := cached(a); l != nil || a.PodUID == "" {
			return l
		}
		return r.gone.of(a.PodUID)
	}
}

// rememberingPods wraps the pods' event handler: a deleted pod's labels are remembered
// before the pass it asks for can read them.
type rememberingPods struct {
	handler.EventHandler
	gone *goneLabels
}

// Delete remembers the pod's labels, then passes the event on.
func (h rememberingPods) Delete(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	h.gone.went(e.Object.GetUID(), e.Object.GetLabels())
	h.EventHandler.Delete(ctx, e, q)
}
