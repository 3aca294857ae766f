package controllers

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"slices"

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

// statusDigestKey is the annotation under which the cache's copy of a quota holds the
// digest of its status. It is not a valid annotation key, so no object that the apiserver
// hands out carries it: only the cache's copy has it (the cache drops the quota's own
// annotations, and nothing of the cache's copy is written back). No one can set it, and
// it marks a copy that the cache has slimmed already.
const statusDigestKey = "#status-digest"

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

// storedStatusDigest is the digest of the status that the apiserver holds for obj, whose
// status (from obj itself) is st: the cache's copy says it, and any other copy holds its
// whole status.
func storedStatusDigest(obj client.Object, st *cqv1.QuotaStatus) string {
	if d, ok := obj.GetAnnotations()[statusDigestKey]; ok {
		return d
	}
	return statusDigest(st)
}

// slimStatus keeps of the status of the cache's copy of a quota what the manager reads
// back: observedGeneration (a status for a new generation is written at once), pruned
// (the pruning pass's counter, which it changes on the copy it read) and the conditions
// without their messages (their types, statuses, reasons and transition times, which the
// next status keeps and which decide the events). The rest is recomputed on every pass,
// and its digest, taken first, says whether the apiserver holds it already.
//
// The informer may pass an object through the cache's transform more than once (a watch
// list's objects again when it replaces the store): a copy slimmed already is left as it
// is, or its digest would be the slim status's, and every status would be written again.
func slimStatus(obj client.Object, st *cqv1.QuotaStatus) {
	if _, slim := obj.GetAnnotations()[statusDigestKey]; slim {
		return
	}
	obj.SetAnnotations(map[string]string{statusDigestKey: statusDigest(st)})
	conditions := slices.Clone(st.Conditions) // at their number: decoded, three took the room of four
	for i := range conditions {
		c := &conditions[i]
		c.Type, c.Status, c.Reason, c.Message = few(c.Type), metav1.ConditionStatus(few(string(c.Status))), few(c.Reason), ""
	}
	*st = cqv1.QuotaStatus{ObservedGeneration: st.ObservedGeneration, Pruned: st.Pruned, Conditions: conditions}
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
		return storedStatusDigest(e.ObjectOld, quotaStatusOf(e.ObjectOld)) != storedStatusDigest(e.ObjectNew, quotaStatusOf(e.ObjectNew))
	},
	CreateFunc:  func(event.CreateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
}
