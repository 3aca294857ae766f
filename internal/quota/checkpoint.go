package quota

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// ArchiveOf is the archive a Checkpoint stands for, the one place that reads its identity
// (spec.archive); false for a Checkpoint an agent before v0.3 published without one. An
// orphan of a gone namespace counts against that namespace as DeletedNamespace names it,
// never against the agent's namespace, where its object lives.
// OrphanSince is left for the caller: only the manager knows since when a pod is gone.
func ArchiveOf(c *cqv1.Checkpoint) (Archive, bool) {
	s := c.Spec.Archive
	if s == nil {
		return Archive{}, false
	}
	ns := c.Namespace
	if s.OrphanOf != "" {
		ns = DeletedNamespace(s.OrphanOf)
	}
	return Archive{
		Name: c.Name, Namespace: ns,
		Pod: s.PodName, PodUID: string(s.PodUID), Container: s.ContainerName,
		Node: s.NodeName, Size: s.SizeBytes, CheckpointTime: s.CheckpointTime.Time,
		Pinned: c.IsPinned(), Unreadable: c.IsUnreadable(), Deleting: !c.DeletionTimestamp.IsZero(),
		Copy: c.IsCopy(),
	}, true
}

// DeletedNamespace is the namespace an orphan counts against: the one it was taken in,
// which was deleted. No namespace can have this name, so a namespace created later under
// the old name, which is another namespace, shares none of its limits, and neither its
// quotas nor a cluster quota's namespaceSelector (a deleted namespace has no labels)
// target the orphan; a cluster quota that selects every namespace does.
func DeletedNamespace(name string) string { return name + " (deleted)" }

// PodLabelsFrom is a Resolver's PodLabels over pods keyed by namespace and name. An archive
// gets its pod's labels only while a pod of that name has the archive's pod UID (a pod
// re-created under the same name is another pod), and none (nil) once its pod is gone: a
// missing key or a nil entry, which is how the manager remembers a lookup that found none.
func PodLabelsFrom[T any, P interface {
	*T
	metav1.Object
}](pods map[types.NamespacedName]P) func(a *Archive) map[string]string {
	return func(a *Archive) map[string]string {
		p := pods[types.NamespacedName{Namespace: a.Namespace, Name: a.Pod}]
		if p == nil || (a.PodUID != "" && string(p.GetUID()) != a.PodUID) {
			return nil
		}
		if labels := p.GetLabels(); labels != nil {
			return labels
		}
		return map[string]string{}
	}
}

// InputOf resolves quotas over archives with what labels tells of the cluster: the Input
// to compute, and the Governance that the quotas' reports read.
func InputOf(quotas []*policy.Quota, archives []Archive, labels Labels, now time.Time) (Input, *Governance) {
	res := Govern(quotas, archives, labels)
	return Input{Archives: archives, Quotas: res.Quotas, Rules: res.Rules, Now: now}, res
}
