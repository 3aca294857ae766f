package nodeagent

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
)

// status is what the Checkpoint's status should say: what pins the archive and, only
// while it cannot be read, why. A readable, unpinned archive has an empty status, so that
// publishing it takes no status write.
func (r *Reconciler) status(obj *cqv1.Checkpoint, p published) cqv1.CheckpointStatus {
	st := cqv1.CheckpointStatus{
		Pinned:     obj.Spec.Pinned || p.marker != markerNone,
		KeepMarker: p.marker == markerUser,
		// The manager's and the Offloader's: kept as they are, with the Offloader's conditions.
		Offload:  obj.Status.Offload,
		Location: obj.Status.Location,
	}
	for _, kind := range []string{cqv1.CheckpointConditionOffloadFailed, cqv1.CheckpointConditionFetched} {
		if c := meta.FindStatusCondition(obj.Status.Conditions, kind); c != nil {
			st.Conditions = append(st.Conditions, *c)
		}
	}
	if p.readErr == nil {
		return st
	}
	// The condition as it stands, so that its transition time stays when nothing changed.
	if c := meta.FindStatusCondition(obj.Status.Conditions, cqv1.CheckpointConditionUnreadable); c != nil {
		st.Conditions = append(st.Conditions, *c)
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type:               cqv1.CheckpointConditionUnreadable,
		Status:             metav1.ConditionTrue,
		Reason:             string(archive.ReasonOf(p.readErr)),
		Message:            eventNote(p.readErr) + "; the archive is kept and read again when it changes",
		ObservedGeneration: obj.Generation,
		LastTransitionTime: r.now(),
	})
	return st
}

func becameUnreadable(old, updated cqv1.CheckpointStatus) bool {
	return meta.IsStatusConditionTrue(updated.Conditions, cqv1.CheckpointConditionUnreadable) &&
		!meta.IsStatusConditionTrue(old.Conditions, cqv1.CheckpointConditionUnreadable)
}

// eventNote shortens an error to what an event or a condition message may hold.
func eventNote(err error) string {
	const limit = 800
	s := err.Error()
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return s
}

// reportOnNode reports an archive that names no namespace: in the log, on the metric
// (through the state), and as an event on the Node object when there is one.
func (r *Reconciler) reportOnNode(ctx context.Context, readErr error) {
	log := logf.FromContext(ctx)
	log.Info("Found an unreadable archive; it is kept on disk and read again when it changes", "reason", archive.ReasonOf(readErr), "error", readErr.Error())
	var node corev1.Node
	if err := r.APIReader.Get(ctx, types.NamespacedName{Name: r.Config.NodeName}, &node); err != nil {
		log.V(1).Info("Found no Node object to report the unreadable archive on", "node", r.Config.NodeName, "error", err.Error())
		return
	}
	// The action carries the kind of failure: events of one subject, reason and action form
	// one series, so each kind of failure shows on the Node, and the metric counts archives.
	r.Recorder.Eventf(&node, nil, corev1.EventTypeWarning, "UnreadableArchive", string(archive.ReasonOf(readErr)),
		"%s; the archive is kept on disk and read again when it changes", eventNote(readErr))
}
