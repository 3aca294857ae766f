package quota

import (
	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// ArchiveOf is the archive a Checkpoint stands for, the one place that reads its identity
// (spec.archive); false for a Checkpoint an agent before v0.3 published without one. An
// orphan of a gone namespace counts against that namespace (so against the cluster quotas
// that select it), never against the agent's namespace, where its object lives.
// OrphanSince is left for the caller: only the manager knows since when a pod is gone.
func ArchiveOf(c *cqv1.Checkpoint) (Archive, bool) {
	s := c.Spec.Archive
	if s == nil {
		return Archive{}, false
	}
	ns := c.Namespace
	if s.OrphanOf != "" {
		ns = s.OrphanOf
	}
	return Archive{
		Name: c.Name, Namespace: ns,
		Pod: s.PodName, PodUID: string(s.PodUID), Container: s.ContainerName,
		Node: s.NodeName, Size: s.SizeBytes, CheckpointTime: s.CheckpointTime.Time,
		Pinned: c.IsPinned(), Unreadable: c.IsUnreadable(),
	}, true
}
