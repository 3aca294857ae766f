package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// Event reasons of a deletion.
const (
	ReasonArchiveKept       = "ArchiveKept"
	ReasonArchiveNotRemoved = "ArchiveNotRemoved"
)

// finalize handles a Checkpoint being deleted: it removes the archive unless something
// says to keep it, then drops the finalizer. Every step can be repeated, so a crash at
// any point converges on the next pass.
func (r *Reconciler) finalize(ctx context.Context, k fileKey, obj *cqv1.Checkpoint) error {
	if !controllerutil.ContainsFinalizer(obj, cqv1.FinalizerArchive) {
		return nil
	}
	log := logf.FromContext(ctx).WithValues("checkpoint", obj.Namespace+"/"+obj.Name)
	pruneReason := obj.Annotations[cqv1.AnnotationPruneReason]
	marker, err := readMarker(k.Path())
	if err != nil {
		return fmt.Errorf("reading the .keep marker of %s: %w", k.Path(), err)
	}

	switch {
	// The agent's own marker only mirrors spec.pinned, so it is the spec that decides here.
	case marker == markerUser || obj.Spec.Pinned:
		// Pinned archives are never deleted, whoever asks. Make the pin outlive this
		// object, so that the archive is published again still pinned.
		if obj.Spec.Pinned && marker == markerNone {
			if err := writeAgentMarker(k.Path(), obj.Namespace+"/"+obj.Name); err != nil {
				return fmt.Errorf("writing the .keep marker of %s: %w", k.Path(), err)
			}
		}
		note := fmt.Sprintf("Kept archive %s on node %s: it is pinned by %s. It is published again as a new Checkpoint. To delete it, unpin it first, then delete the Checkpoint",
			k.Path(), r.Config.NodeName, pinnedBy(obj, marker))
		if pruneReason != "" {
			note = fmt.Sprintf("Refused to prune (%s): %s", pruneReason, note)
		}
		r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, ReasonArchiveKept, "Delete", "%s", note)
		log.Info("kept a pinned archive whose Checkpoint was deleted", "pruneReason", pruneReason)
	case pruneReason != "" && meta.IsStatusConditionTrue(obj.Status.Conditions, cqv1.CheckpointConditionUnreadable):
		// An unreadable archive is never deleted automatically; a person may still delete it.
		r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, ReasonArchiveKept, "Delete",
			"Refused to prune (%s): archive %s on node %s is unreadable and is never deleted automatically", pruneReason, k.Path(), r.Config.NodeName)
	default:
		err := removeArchive(r.Config, k)
		if errors.Is(err, errUnsafe) {
			r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, ReasonArchiveNotRemoved, "Delete", "%s", eventNote(err))
			log.Info("did not remove the archive of a deleted Checkpoint", "reason", err.Error())
			break
		}
		if err != nil {
			return fmt.Errorf("removing archive %s: %w", k.Path(), err)
		}
		if err := removeAgentMarker(k.Path()); err != nil {
			return fmt.Errorf("removing the agent's .keep marker of %s: %w", k.Path(), err)
		}
		r.state.removed.Add(1)
		r.state.forget(k)
		r.cache.Forget(k.Path())
		// No event per removed archive: pruning removes thousands at a time, and the
		// manager already reports each pruned group as one Pruned event on its quota.
		log.Info("removed the archive of a deleted Checkpoint", "path", k.Path(), "pruneReason", pruneReason)
	}
	return r.dropFinalizer(ctx, obj)
}

func pinnedBy(obj *cqv1.Checkpoint, marker markerKind) string {
	var by []string
	if obj.Spec.Pinned {
		by = append(by, "spec.pinned (kubectl patch checkpoint "+obj.Name+" -n "+obj.Namespace+` --type merge -p '{"spec":{"pinned":false}}')`)
	}
	if marker == markerUser {
		by = append(by, "a .keep marker beside it on the node (remove "+obj.Status.FileName+".keep)")
	}
	if len(by) == 0 {
		by = append(by, "a .keep marker")
	}
	return strings.Join(by, " and ")
}
