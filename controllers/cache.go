package controllers

import (
	"unique"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// CacheOptions are the manager's cache options: every object without managedFields, and
// Checkpoints, pods and namespaces (the many objects) holding only what the controllers
// read: at scale the cache is most of the manager's memory. A quota is parsed as it enters
// the cache, into policies (nil: parsed there only to be compacted), where the pass and
// admission find it.
func CacheOptions(policies *policy.Parsed) cache.Options {
	slimQuota := func(obj any) (any, error) { return slimQuotaInto(policies, obj) }
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&cqv1.Checkpoint{}:             {Transform: slimCheckpoint},
			&cqv1.CheckpointQuota{}:        {Transform: slimQuota},
			&cqv1.ClusterCheckpointQuota{}: {Transform: slimQuota},
			metadataOf("Pod"):              {Transform: slimMetadata},
			metadataOf("Namespace"):        {Transform: slimMetadata},
		},
	}
}

// slimCheckpoint keeps of a Checkpoint what the pruning pass, the status and the node
// release read: identity and resourceVersion, the finalizers of older agents, spec.pinned
// and of spec.archive the node, directory, pod, container, orphanOf, size and time, and the
// status. The file name, the image and the runtime, the readable size and the labels (the
// manager selects by its own indexes) are dropped.
func slimCheckpoint(obj any) (any, error) {
	c, ok := obj.(*cqv1.Checkpoint)
	if !ok {
		return obj, nil // a tombstone (cache.DeletedFinalStateUnknown)
	}
	c.ManagedFields, c.Labels, c.Annotations = nil, nil, nil
	c.APIVersion, c.Kind, c.Namespace = few(c.APIVersion), few(c.Kind), few(c.Namespace)
	if a := c.Spec.Archive; a != nil {
		a.FileName, a.Image, a.Runtime, a.Size = "", "", "", ""
		a.NodeName, a.Directory, a.ContainerName = few(a.NodeName), few(a.Directory), few(a.ContainerName)
		a.OrphanOf = few(a.OrphanOf)
	}
	return c, nil
}

// slimQuotaInto keeps of a quota of either kind what the pass, the status writer and the
// webhooks read: its identity, its spec and of its status what is read back with the
// digest of the whole, in place of its summary (slimStatus). The annotations go, among them kubectl's
// last-applied-configuration, a second copy of the whole spec on every quota applied
// client-side, and so do the labels, finalizers and owners, which nothing reads;
// managedFields go too (the default transform). The target and namespace selector of a
// quota that parses are its policy's own (policy.ShareTarget): its names compact (a long
// name as its digest, policy.Compact), sorted and each once, its labels as requirements,
// which parse to the same policy: a maximal quota's 11 KB of names cost the cache 13 KB,
// and then 1.5 KB beside its policy (issue 29). One that does not parse is kept as
// written, so that its status says why.
func slimQuotaInto(policies *policy.Parsed, obj any) (any, error) {
	q, ok := obj.(client.Object)
	if !ok {
		return obj, nil
	}
	q.SetManagedFields(nil)
	q.SetAnnotations(nil)
	q.SetLabels(nil)
	q.SetFinalizers(nil)
	q.SetOwnerReferences(nil)
	q.SetNamespace(few(q.GetNamespace()))
	switch q := q.(type) {
	case *cqv1.CheckpointQuota:
		slimStatus(&q.Status)
		if p, err := policies.Quota(q, func() (*policy.Quota, error) { return policy.FromCheckpointQuota(q) }); err == nil {
			policy.ShareTarget(q.Spec.Target, p)
		}
	case *cqv1.ClusterCheckpointQuota:
		slimStatus(&q.Status)
		if p, err := policies.Quota(q, func() (*policy.Quota, error) { return policy.FromClusterQuota(q) }); err == nil {
			policy.ShareTarget(q.Spec.Target, p)
			q.Spec.NamespaceSelector = policy.SharedSelector(p.NamespaceSelector)
		}
	}
	return q, nil
}

// slimMetadata keeps of a pod's or namespace's metadata what the pass reads: name, UID,
// labels and deletion.
func slimMetadata(obj any) (any, error) {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return obj, nil
	}
	m.ManagedFields, m.Annotations, m.OwnerReferences = nil, nil, nil
	m.APIVersion, m.Kind, m.Namespace = few(m.APIVersion), few(m.Kind), few(m.Namespace)
	return m, nil
}

// few shares one copy of each of the strings that repeat across the cached objects and
// have few distinct values in a cluster: kinds, namespaces, nodes, checkpoint directories
// and container names. Each decoded object otherwise holds its own copy (about 130 bytes
// per Checkpoint). The standard library's unique package keeps the canonical copies weakly,
// so names of namespaces and nodes long gone are not kept forever; pod names and UIDs are
// not interned (they are many, and they churn).
func few(s string) string {
	if s == "" {
		return s
	}
	return unique.Make(s).Value()
}
