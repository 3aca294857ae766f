package controllers

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// The manager's cache keeps of a quota's status only what is read back (slimStatus), and a
// digest of the whole status as the apiserver holds it. The status writer compares the
// digest of the status it computes with that one: equal, the apiserver holds it already;
// different (a new view, a restart that finds an older status, someone else's edit), it
// writes the whole status again. A maximal quota's decoded status was a quarter of what
// the manager kept of it (issue 29).

// digestMark starts the summary of the cache's copy of a quota, which holds the digest of
// its status in place of the summary (slimStatus): a one-entry annotation map took 340
// bytes of every quota, the summary's string 24 (issue 29). No summary the manager writes
// starts with it ("12/50"). Another client that writes one that does makes the cache keep
// that status whole and the status writer write its own at once (its digest differs), as
// for any other edit.
const digestMark = "#"

// statusDigest is the digest of a status as its JSON says it: two statuses have the same
// digest exactly when the apiserver would store the same status for both (quantities in
// their canonical form, times in seconds).
func statusDigest(st *cqv1.QuotaStatus) string {
	data, err := json.Marshal(st)
	if err != nil {
		return "" // never equal to a digest: the status is written
	}
	sum := sha256.Sum256(data)
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// storedStatusDigest is the digest of the status st that the apiserver holds: the cache's
// copy says it, and any other copy holds its whole status.
func storedStatusDigest(st *cqv1.QuotaStatus) string {
	if d, ok := strings.CutPrefix(st.Summary.Checkpoints, digestMark); ok {
		return d
	}
	return statusDigest(st)
}

// slimStatus keeps of the status of the cache's copy of a quota what the manager reads
// back: observedGeneration (a status for a new generation is written at once), pruned
// (the pruning pass's counter, which it changes on the copy it read) and the conditions
// without their messages (their types, statuses, reasons and transition times, which the
// next status keeps and which decide the events). The rest is recomputed on every pass,
// and its digest, taken first and kept in place of the summary, says whether the
// apiserver holds it already.
//
// The informer may pass an object through the cache's transform more than once (a watch
// list's objects again when it replaces the store): a copy slimmed already (its summary
// starts with digestMark) is left as it is, or its digest would be the slim status's, and every status would be written again.
func slimStatus(st *cqv1.QuotaStatus) {
	if strings.HasPrefix(st.Summary.Checkpoints, digestMark) {
		return
	}
	digest := digestMark + statusDigest(st)
	conditions := slices.Clone(st.Conditions) // at their number: decoded, three took the room of four
	for i := range conditions {
		c := &conditions[i]
		c.Type, c.Status, c.Reason, c.Message = few(c.Type), metav1.ConditionStatus(few(string(c.Status))), few(c.Reason), ""
	}
	*st = cqv1.QuotaStatus{ObservedGeneration: st.ObservedGeneration, Summary: cqv1.UsageSummary{Checkpoints: digest},
		Pruned: st.Pruned, Conditions: conditions}
}

// statusOnly is what the status writer sends: obj's identity and resourceVersion, and the
// status st. The status subresource takes nothing else, and the cache's copy of the spec
// (long names as digests) is not the quota's.
func statusOnly(obj client.Object, st *cqv1.QuotaStatus) client.Object {
	meta := metav1.ObjectMeta{Name: obj.GetName(), Namespace: obj.GetNamespace(), UID: obj.GetUID(), ResourceVersion: obj.GetResourceVersion()}
	switch obj.(type) {
	case *cqv1.ClusterCheckpointQuota:
		return &cqv1.ClusterCheckpointQuota{ObjectMeta: meta, Status: *st}
	default:
		return &cqv1.CheckpointQuota{ObjectMeta: meta, Status: *st}
	}
}

// statusChanged passes the updates whose status the apiserver holds differently from
// before, so that a status someone else wrote is written back at once, not at the next
// change of usage. The writer's own writes pass too, and find nothing to write.
var statusChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return storedStatusDigest(quotaStatusOf(e.ObjectOld)) != storedStatusDigest(quotaStatusOf(e.ObjectNew))
	},
	CreateFunc:  func(event.CreateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
}
