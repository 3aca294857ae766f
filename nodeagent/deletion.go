package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// Event reasons of a deletion.
const (
	ReasonArchiveKept       = "ArchiveKept"
	ReasonArchiveNotRemoved = "ArchiveNotRemoved"
)

// goneBecause is why the Checkpoint an archive's record names is no longer there.
type goneBecause string

const (
	// goneNot: the apiserver still has it; the cache is behind.
	goneNot goneBecause = "still there"
	// goneExplicitly: deleted while its namespace, the CRD and the Node stayed the same, which
	// is what a person's `kubectl delete` and the manager's pruning do, whether the object is
	// gone or another finalizer still holds it. Only this removes the file.
	goneExplicitly goneBecause = "deleted explicitly"
	// goneUninstalled: the Checkpoint CRD is gone or being deleted.
	goneUninstalled goneBecause = "the Checkpoint CRD is gone or being deleted"
	// goneNodeUnknown: this agent's Node object does not exist, so the manager may have
	// released the node's Checkpoints; nothing can tell.
	goneNodeUnknown goneBecause = "the Node object of this agent does not exist"
	// The rest publish the archive again.
	goneReinstalled   goneBecause = "the Checkpoint CRD was deleted and created again"
	goneNodeReplaced  goneBecause = "the Node object was deleted and created again (the manager released a gone node's Checkpoints)"
	goneNamespace     goneBecause = "its namespace is gone or being deleted"
	goneNameReclaimed goneBecause = "another Checkpoint of the same name replaced it"
)

// Retry periods while the agent cannot publish an archive whose Checkpoint is gone.
const (
	retryUninstalled = 10 * time.Second
	retryNodeUnknown = 5 * time.Minute
)

// handleGone acts on the disappearance of the Checkpoint recorded for archive k. done says
// the pass ends here; otherwise the archive is published again.
func (r *Reconciler) handleGone(ctx context.Context, k fileKey, rec *record, marker markerKind) (reconcile.Result, bool, error) {
	why, err := r.whyGone(ctx, k, rec)
	if err != nil {
		// An outage or an RBAC error: nothing is decided, the file stays.
		return reconcile.Result{}, true, fmt.Errorf("finding out why Checkpoint %s/%s is gone: %w", rec.Namespace, rec.Name, err)
	}
	log := logf.FromContext(ctx).WithValues("checkpoint", rec.Namespace+"/"+rec.Name, "because", string(why))
	switch why {
	case goneNot:
		return reconcile.Result{RequeueAfter: time.Second}, true, nil
	case goneUninstalled:
		log.V(1).Info("Kept the archive while the Checkpoint CRD is not installed")
		// The retry must see the witnesses as they are then, not as the lookup that said so.
		r.deletions.renew(k.Path(), rec.UID, r.witnesses.mark())
		return reconcile.Result{RequeueAfter: retryUninstalled}, true, nil
	case goneNodeUnknown:
		log.Info("Kept the archive of a deleted Checkpoint: without a Node object the agent cannot tell a person's delete from the release of a gone node; set --node-name to this node's name")
		r.deletions.renew(k.Path(), rec.UID, r.witnesses.mark())
		return reconcile.Result{RequeueAfter: retryNodeUnknown}, true, nil
	case goneExplicitly:
		res, done, err := r.removeDeleted(ctx, k, rec, marker)
		if err == nil {
			r.deletions.forget(k.Path())
		}
		return res, done, err
	}
	log.Info("Kept the archive of a Checkpoint that disappeared, to publish it again")
	if err := r.records.drop(k.Path()); err != nil {
		return reconcile.Result{}, true, err
	}
	r.deletions.forget(k.Path())
	return reconcile.Result{}, false, nil
}

// whyGone finds out what became of the recorded Checkpoint and of its witnesses. The
// Checkpoint's own fate comes from the watch where it delivered the deletion of the
// recorded UID (a delete, or a deletion timestamp that another finalizer holds the object
// under); otherwise the apiserver is asked. The witnesses are then looked up, never from a
// cache, by a lookup that started after the deletion was observed, which one lookup does
// for every deletion observed before it.
func (r *Reconciler) whyGone(ctx context.Context, k fileKey, rec *record) (goneBecause, error) {
	after, seen := r.deletions.seen(k.Path(), rec.UID)
	if !seen {
		why, err := r.askCheckpoint(ctx, rec)
		if why != "" || err != nil {
			return why, err
		}
		// The answer came back: every lookup from now on saw the witnesses after the deletion.
		after = r.witnesses.mark()
	}
	crd, err := r.witnesses.CRD(ctx, after)
	if err != nil {
		return "", err
	}
	if !crd.Active() {
		return goneUninstalled, nil
	}
	if crd.UID != rec.CRDUID {
		return goneReinstalled, nil
	}
	node, err := r.witnesses.Node(ctx, after)
	if err != nil {
		return "", err
	}
	if node.UID == "" {
		return goneNodeUnknown, nil
	}
	if node.UID != rec.NodeUID {
		return goneNodeReplaced, nil
	}
	ns, err := r.witnesses.Namespace(ctx, rec.Namespace, after)
	if err != nil {
		return "", err
	}
	if !ns.Active() || ns.UID != rec.NamespaceUID {
		return goneNamespace, nil
	}
	return goneExplicitly, nil
}

// askCheckpoint asks the apiserver for the recorded Checkpoint, which the watch has not
// shown deleted. It returns "" when its deletion was admitted: it is gone, or it is being
// deleted and only another finalizer holds it.
func (r *Reconciler) askCheckpoint(ctx context.Context, rec *record) (goneBecause, error) {
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(cqv1.GroupVersion.WithKind("Checkpoint"))
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: rec.Namespace, Name: rec.Name}, obj)
	switch {
	case apierrors.IsNotFound(err):
		return "", nil
	case meta.IsNoMatchError(err):
		return goneUninstalled, nil
	case err != nil:
		return "", err
	case obj.UID != rec.UID:
		return goneNameReclaimed, nil
	case obj.DeletionTimestamp.IsZero():
		return goneNot, nil
	}
	return "", nil
}

// observedDeletions holds, per archive, the deletion of its recorded Checkpoint that the
// watch delivered, and when the agent observed it.
type observedDeletions struct {
	mu     sync.Mutex
	byPath map[string]observedDeletion
}

type observedDeletion struct {
	uid types.UID
	at  mark
}

func newObservedDeletions() *observedDeletions {
	return &observedDeletions{byPath: map[string]observedDeletion{}}
}

// observe notes that the Checkpoint uid of the archive at path was deleted, as of at.
func (d *observedDeletions) observe(path string, uid types.UID, at mark) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if prev, ok := d.byPath[path]; ok && prev.uid == uid {
		return // the first observation is the earliest
	}
	d.byPath[path] = observedDeletion{uid: uid, at: at}
}

// renew moves the observation of the deletion of the Checkpoint uid of the archive at path
// to at, so that a decision taken again later asks for lookups started after at.
func (d *observedDeletions) renew(path string, uid types.UID, at mark) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if o, ok := d.byPath[path]; ok && o.uid == uid {
		d.byPath[path] = observedDeletion{uid: uid, at: at}
	}
}

// seen returns when the deletion of the Checkpoint uid of the archive at path was observed.
func (d *observedDeletions) seen(path string, uid types.UID) (mark, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.byPath[path]
	return o.at, ok && o.uid == uid
}

// forget drops what was observed for the archive at path.
func (d *observedDeletions) forget(path string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.byPath, path)
}

// removeDeleted removes the archive of an explicitly deleted Checkpoint, unless it is
// pinned: then it is kept and published again. Every step can be repeated, so a crash at
// any point converges on the next pass.
func (r *Reconciler) removeDeleted(ctx context.Context, k fileKey, rec *record, marker markerKind) (reconcile.Result, bool, error) {
	log := logf.FromContext(ctx).WithValues("checkpoint", rec.Namespace+"/"+rec.Name)
	gone := &cqv1.Checkpoint{ObjectMeta: metav1.ObjectMeta{Namespace: rec.Namespace, Name: rec.Name, UID: rec.UID}}
	gone.SetGroupVersionKind(cqv1.GroupVersion.WithKind("Checkpoint"))
	if marker != markerNone {
		// Pinned archives are never removed, whoever asks; the agent's own marker is the
		// spec.pinned of the deleted object, kept on disk.
		r.Recorder.Eventf(gone, nil, corev1.EventTypeWarning, ReasonArchiveKept, "Delete",
			"Kept archive %s on node %s: it is pinned by %s. It is published again as a new Checkpoint. To delete it, unpin it first, then delete the Checkpoint",
			k.Path(), r.Config.NodeName, pinnedBy(k, marker))
		log.Info("Kept a pinned archive whose Checkpoint was deleted")
		return reconcile.Result{}, false, r.records.drop(k.Path())
	}
	err := removeArchive(r.Config, k)
	if errors.Is(err, errUnsafe) {
		r.Recorder.Eventf(gone, nil, corev1.EventTypeWarning, ReasonArchiveNotRemoved, "Delete", "%s", eventNote(err))
		log.Info("Could not remove the archive of a deleted Checkpoint", "reason", err.Error())
		return reconcile.Result{}, true, r.records.drop(k.Path())
	}
	if err != nil {
		return reconcile.Result{}, true, fmt.Errorf("removing archive %s: %w", k.Path(), err)
	}
	if err := removeAgentMarker(k.Path()); err != nil {
		return reconcile.Result{}, true, fmt.Errorf("removing the agent's .keep marker of %s: %w", k.Path(), err)
	}
	r.state.removed.Add(1)
	r.state.forget(k)
	r.cache.Forget(k.Path())
	// No event per removed archive: pruning removes thousands at a time, and the manager
	// already reports each pruned group as one Pruned event on its quota.
	log.Info("Removed the archive of a deleted Checkpoint", "path", k.Path())
	return reconcile.Result{}, true, r.records.dropRemoved(k.Path())
}

// orphanOf returns the namespace the archive k is known to be an orphan of, or "": from
// its record (or the placeholder a dropped record of an orphan leaves), else from a
// Checkpoint that stands for it, which is all there is when the record was lost.
func (r *Reconciler) orphanOf(k fileKey, live []*cqv1.Checkpoint) string {
	if rec := r.records.get(k.Path()); rec != nil && rec.OrphanOf != "" {
		return rec.OrphanOf
	}
	for _, obj := range live {
		if obj.Namespace != r.Config.OrphanNamespace {
			continue
		}
		if obj.Spec.Archive != nil && obj.Spec.Archive.OrphanOf != "" {
			return obj.Spec.Archive.OrphanOf
		}
		// An orphan that an agent before spec.archive published says it by its label only.
		if obj.Spec.Archive == nil && obj.Labels[cqv1.LabelOrphanOf] != "" {
			return obj.Labels[cqv1.LabelOrphanOf]
		}
	}
	return ""
}

func pinnedBy(k fileKey, marker markerKind) string {
	if marker == markerAgent {
		return "spec.pinned of the deleted Checkpoint (kept on the node as " + k.Name + ".keep)"
	}
	return "a .keep marker beside it on the node (remove " + k.Name + ".keep)"
}

// destination is where an archive's Checkpoint lives.
type destination struct {
	namespace    string
	namespaceUID types.UID
	// orphanOf is the archive's own namespace when it is gone and namespace is the agent's.
	orphanOf string
}

// destination returns where the Checkpoint of an archive taken in namespace ns lives: in
// ns while it is active, else in the agent's namespace as an orphan of ns. An archive
// once an orphan of ns (orphanOf, from orphanOf) stays one: a namespace created later
// under the same name is another namespace.
func (r *Reconciler) destination(ctx context.Context, ns, orphanOf string) (destination, error) {
	if orphanOf != ns {
		p, err := r.witnesses.Namespace(ctx, ns, anyRecent)
		if err != nil {
			return destination{}, err
		}
		if p.Active() {
			return destination{namespace: ns, namespaceUID: p.UID}, nil
		}
	}
	orphans := r.Config.OrphanNamespace
	p, err := r.witnesses.Namespace(ctx, orphans, anyRecent)
	if err != nil {
		return destination{}, err
	}
	if !p.Active() {
		return destination{}, fmt.Errorf("namespace %s of the archive is gone, and namespace %s, which holds the Checkpoints of such archives, does not exist or is being deleted: the archive is kept and published once it exists (set --orphan-namespace)", ns, orphans)
	}
	return destination{namespace: orphans, namespaceUID: p.UID, orphanOf: ns}, nil
}

// markRemoved says, on each Checkpoint being deleted that another finalizer still holds,
// that its archive is gone from the node (ArchiveRemoved): until then the manager counts it,
// since usage counts files, not live objects.
func (r *Reconciler) markRemoved(ctx context.Context, objs []*cqv1.Checkpoint) error {
	for _, obj := range objs {
		if obj.IsArchiveRemoved() {
			continue
		}
		patch := client.MergeFrom(obj.DeepCopy())
		meta.SetStatusCondition(&obj.Status.Conditions, metav1.Condition{Type: cqv1.CheckpointConditionArchiveRemoved,
			Status: metav1.ConditionTrue, Reason: "FileRemoved", ObservedGeneration: obj.Generation,
			Message: "the archive is gone from node " + r.Config.NodeName + "; a finalizer still holds this Checkpoint, which no longer counts"})
		if err := r.Client.Status().Patch(ctx, obj, patch); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("marking the archive of Checkpoint %s/%s removed: %w", obj.Namespace, obj.Name, err)
		}
	}
	return nil
}
