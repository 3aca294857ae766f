package nodeagent

import (
	"context"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
)

// published is what the agent learned about an archive that has a namespace.
type published struct {
	dest    destination
	info    os.FileInfo
	res     archive.Result
	readErr error
	marker  markerKind
}

// publish creates the archive's Checkpoint, or brings the one there is in line with the
// archive, and records it on the node. A readable, unpinned archive costs one write: the
// Create, which carries the whole of spec.archive.
func (r *Reconciler) publish(ctx context.Context, k fileKey, obj *cqv1.Checkpoint, p published) error {
	fresh := Publication{Node: r.Config.NodeName, Dir: k.Dir, File: k.Name, Identity: p.res.Identity, Size: p.info.Size(),
		Namespace: p.dest.namespace, OrphanOf: p.dest.orphanOf, Pinned: p.marker == markerAgent,
		CopyOf: r.copyOf(k, obj, p.info.Size())}.Checkpoint()
	want, labels, pinned := *fresh.Spec.Archive, fresh.Labels, fresh.Spec.Pinned
	if obj != nil && obj.Spec.Archive != nil && !equality.Semantic.DeepEqual(*obj.Spec.Archive, want) {
		// spec.archive never changes: an archive rewritten in place (or read differently
		// by a newer agent) gets a new object, and keeps the pin a person set on the old one.
		pinned = pinned || obj.Spec.Pinned
		err := r.release(ctx, k, obj)
		if apierrors.IsForbidden(err) {
			// The pinned-checkpoint policy lets only the agent's own ServiceAccount delete a
			// pinned Checkpoint: an agent running as anyone else is refused, and the old
			// object stays until a person unpins it; the file is kept.
			r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, "ArchiveChanged", "Publish",
				"the archive %s changed on node %s, but this Checkpoint is pinned and cannot be replaced: %s; unpin it to publish the new archive",
				k.Path(), r.Config.NodeName, eventNote(err))
			return nil
		}
		if err != nil {
			return err
		}
		obj = nil
	}
	switch {
	case obj == nil:
		// The agent's own marker is how spec.pinned outlives its object.
		fresh.Spec.Pinned = pinned
		obj = fresh
		if err := r.Client.Create(ctx, obj); err != nil {
			// AlreadyExists: the cache has not seen the object yet; the retry will.
			return fmt.Errorf("creating Checkpoint %s/%s: %w", obj.Namespace, obj.Name, err)
		}
	case obj.Spec.Archive == nil || !sameLabels(obj.Labels, labels) || isLegacy(obj):
		if err := r.adopt(ctx, obj, want, labels); err != nil {
			return err
		}
	}
	// Recorded before anything else can fail, so that a delete from now on is understood.
	if err := r.remember(ctx, k, obj, p.dest); err != nil {
		return err
	}

	marker, err := r.syncMarker(k, obj, p.marker)
	if err != nil {
		return err
	}
	p.marker = marker
	status := r.status(obj, p)
	if equality.Semantic.DeepEqual(obj.Status, status) {
		return nil
	}
	if becameUnreadable(obj.Status, status) {
		r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, "UnreadableArchive", "Read",
			"%s; the archive is kept on node %s and read again when it changes", eventNote(p.readErr), r.Config.NodeName)
	}
	patch := client.MergeFrom(obj.DeepCopy())
	obj.Status = status
	return r.Client.Status().Patch(ctx, obj, patch)
}

// copyOf is what the archive is a copy of: what the copy book says, or, should the agent's
// state have lost it, what the Checkpoint that stands for the archive says (spec.archive is
// the agent's, and nobody can change it).
func (r *Reconciler) copyOf(k fileKey, obj *cqv1.Checkpoint, size int64) *cqv1.ArchiveCopy {
	if c := r.copies.of(k.Path(), size); c != nil {
		return c
	}
	if obj != nil && obj.Spec.Archive != nil && obj.Spec.Archive.SizeBytes == size {
		return obj.Spec.Archive.CopyOf
	}
	return nil
}

// remember writes the archive's record for obj, with the witnesses as they are now.
func (r *Reconciler) remember(ctx context.Context, k fileKey, obj *cqv1.Checkpoint, dest destination) error {
	if rec := r.records.get(k.Path()); rec != nil && rec.UID == obj.UID && rec.Namespace == obj.Namespace {
		return nil
	}
	crd, err := r.witnesses.CRD(ctx, anyRecent)
	if err != nil {
		return err
	}
	node, err := r.witnesses.Node(ctx, anyRecent)
	if err != nil {
		return err
	}
	return r.records.put(record{
		Path: k.Path(), Namespace: obj.Namespace, Name: obj.Name, UID: obj.UID, OrphanOf: dest.orphanOf,
		NamespaceUID: dest.namespaceUID, CRDUID: crd.UID, NodeUID: node.UID,
	})
}

// adopt gives a Checkpoint that an agent before spec.archive published its spec.archive
// and today's labels, and drops the annotation and labels that only those agents read.
// The update is locked by the object's resourceVersion, so that a pin set meanwhile is
// never overwritten.
func (r *Reconciler) adopt(ctx context.Context, obj *cqv1.Checkpoint, want cqv1.ArchiveSource, labels map[string]string) error {
	if obj.Spec.Archive == nil {
		obj.Spec.Archive = &want
	}
	obj.Labels = labels
	delete(obj.Annotations, cqv1.LegacyAnnotationFile)
	if err := r.Client.Update(ctx, obj); err != nil {
		return fmt.Errorf("adopting Checkpoint %s/%s: %w", obj.Namespace, obj.Name, err)
	}
	logf.FromContext(ctx).Info("Adopted a Checkpoint that an older agent published", "checkpoint", client.ObjectKeyFromObject(obj))
	return nil
}

// sameLabels reports whether a Checkpoint's labels are the ones the agent would give it.
// The node label of earlier agents is neither wanted nor removed: rewriting every
// Checkpoint of a node to drop it would cost a write each and change nothing.
func sameLabels(have, want map[string]string) bool {
	n := len(have)
	if _, ok := have[cqv1.LegacyLabelNode]; ok {
		n--
	}
	if n != len(want) {
		return false
	}
	for key, v := range want {
		if have[key] != v {
			return false
		}
	}
	return true
}

// isLegacy reports whether an agent before spec.archive published obj.
func isLegacy(obj *cqv1.Checkpoint) bool {
	_, ok := obj.Annotations[cqv1.LegacyAnnotationFile]
	return ok
}

// syncMarker keeps the agent's .keep marker in step with spec.pinned, so that the pin
// survives the object (a restart, a refused prune). A marker the agent did not write is
// never touched: it pins whatever spec.pinned says.
func (r *Reconciler) syncMarker(k fileKey, obj *cqv1.Checkpoint, marker markerKind) (markerKind, error) {
	switch {
	case obj.Spec.Pinned && marker == markerNone:
		if err := writeAgentMarker(k.Path(), obj.Namespace+"/"+obj.Name); err != nil {
			return marker, fmt.Errorf("writing the .keep marker of %s: %w", k.Path(), err)
		}
		return readMarker(k.Path())
	case !obj.Spec.Pinned && marker == markerAgent:
		if err := removeAgentMarker(k.Path()); err != nil {
			return marker, fmt.Errorf("removing the agent's .keep marker of %s: %w", k.Path(), err)
		}
		return markerNone, nil
	}
	return marker, nil
}

// keepPin writes the agent's .keep marker for a file that stays while objs, which stood for
// it, are deleted, when one of them is pinned by spec.pinned and nothing marks the file yet:
// the pinned-checkpoint policy lets the agent delete a pinned Checkpoint, and the pin must
// outlive it, as it outlives any object, so that the archive's next Checkpoint is pinned too.
func (r *Reconciler) keepPin(k fileKey, objs []*cqv1.Checkpoint, marker markerKind) (markerKind, error) {
	for _, obj := range objs {
		if obj.Spec.Pinned {
			return r.syncMarker(k, obj, marker)
		}
	}
	return marker, nil
}
