package nodeagent

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
)

// Reasons of the Unreadable condition when the archive was read; the reasons when it
// could not be are archive.Reason values.
const reasonReadable = "Readable"

// status is the Checkpoint status that describes the archive.
func (r *Reconciler) status(k fileKey, obj *cqv1.Checkpoint, p published) cqv1.CheckpointStatus {
	id := p.res.Identity
	checkpointTime := metav1.NewTime(id.CheckpointTime.UTC().Truncate(time.Second))
	modTime := metav1.NewTime(p.info.ModTime().UTC().Truncate(time.Second))
	st := cqv1.CheckpointStatus{
		NodeName:       r.Config.NodeName,
		Directory:      k.Dir,
		FileName:       k.Name,
		PodName:        id.Pod,
		PodUID:         types.UID(id.PodUID),
		ContainerName:  id.Container,
		OrphanOf:       p.dest.orphanOf,
		SizeBytes:      p.info.Size(),
		Size:           ReadableSize(p.info.Size()),
		CheckpointTime: &checkpointTime,
		ModTime:        &modTime,
		Runtime:        id.Runtime,
		Image:          id.Image,
		Pinned:         obj.Spec.Pinned || p.marker != markerNone,
		KeepMarker:     p.marker == markerUser,
		// A copy, because SetStatusCondition changes the slice in place.
		Conditions: append([]metav1.Condition(nil), obj.Status.Conditions...),
	}
	cond := metav1.Condition{
		Type:               cqv1.CheckpointConditionUnreadable,
		Status:             metav1.ConditionFalse,
		Reason:             reasonReadable,
		Message:            "the identity was read from " + string(id.TimeSource) + " metadata",
		ObservedGeneration: obj.Generation,
		LastTransitionTime: r.now(),
	}
	if id.TimeSource == archive.TimeFromArchive {
		cond.Message = "the identity was read from config.dump and spec.dump"
	} else {
		cond.Message = "the identity was read from spec.dump; the checkpoint time from the " + string(id.TimeSource)
	}
	if p.readErr != nil {
		cond.Status = metav1.ConditionTrue
		cond.Reason = string(archive.ReasonOf(p.readErr))
		cond.Message = eventNote(p.readErr) + "; the archive is kept and read again when it changes"
	}
	meta.SetStatusCondition(&st.Conditions, cond)
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
	log.Info("archive is unreadable; it is kept on disk and read again when it changes", "reason", archive.ReasonOf(readErr), "error", readErr.Error())
	var node corev1.Node
	if err := r.APIReader.Get(ctx, types.NamespacedName{Name: r.Config.NodeName}, &node); err != nil {
		log.V(1).Info("no Node object to report the unreadable archive on", "node", r.Config.NodeName, "error", err.Error())
		return
	}
	// The action carries the kind of failure: events of one subject, reason and action form
	// one series, so each kind of failure shows on the Node, and the metric counts archives.
	r.Recorder.Eventf(&node, nil, corev1.EventTypeWarning, "UnreadableArchive", string(archive.ReasonOf(readErr)),
		"%s; the archive is kept on disk and read again when it changes", eventNote(readErr))
}

// ReadableSize writes a byte count the way people read sizes: 64Ki, 1.2Gi.
func ReadableSize(n int64) string {
	units := []string{"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"}
	if n < 1024 {
		return strconv.FormatInt(n, 10)
	}
	v := float64(n)
	unit := ""
	for _, u := range units {
		if v < 1024 {
			break
		}
		v /= 1024
		unit = u
	}
	s := strings.TrimSuffix(fmt.Sprintf("%.1f", v), ".0")
	return s + unit
}
