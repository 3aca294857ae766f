package webhooks

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// cacheLag is how long admission waits for the cache to show a quota that the apiserver
// already has, before it reads that quota from the apiserver instead. The cache usually
// follows within milliseconds.
const cacheLag = 250 * time.Millisecond

// QuotaReader reads what admission compares a quota with: the quotas of one namespace,
// the cluster quotas, and a namespace's labels, each from the manager's cache. An
// admission so costs O(quotas of the namespace) for a CheckpointQuota and O(cluster
// quotas) for a ClusterCheckpointQuota, whatever other tenants wrote.
//
// The cache may lag the apiserver by a moment, and a quota admitted a moment ago must be
// seen by the next admission, or two conflicting quotas applied together would both
// pass. So each read of a scope also lists, live, the names and resourceVersions of that
// scope's quotas (metadata only: no spec crosses the wire), takes from the cache the
// quotas whose resourceVersion it shows, waits up to cacheLag for the others, and reads
// any still missing from the apiserver one by one.
type QuotaReader struct {
	// Cache is the manager's cached client (mgr.GetClient()).
	Cache client.Reader
	// Live reads the apiserver directly (mgr.GetAPIReader()).
	Live client.Reader
	// Policies keeps the quotas' parsed policies, so that an admission does not parse
	// every other quota again; nil parses them on each admission.
	Policies *policy.Parsed
}

// NamespaceQuotas are the CheckpointQuotas of a namespace as the apiserver has them now.
func (r *QuotaReader) NamespaceQuotas(ctx context.Context, namespace string) ([]cqv1.CheckpointQuota, error) {
	return current(ctx, r, "CheckpointQuota", func() ([]cqv1.CheckpointQuota, error) {
		var l cqv1.CheckpointQuotaList
		err := r.Cache.List(ctx, &l, client.InNamespace(namespace), client.UnsafeDisableDeepCopy)
		return l.Items, err
	}, client.InNamespace(namespace))
}

// ClusterQuotas are the ClusterCheckpointQuotas as the apiserver has them now.
func (r *QuotaReader) ClusterQuotas(ctx context.Context) ([]cqv1.ClusterCheckpointQuota, error) {
	return current(ctx, r, "ClusterCheckpointQuota", func() ([]cqv1.ClusterCheckpointQuota, error) {
		var l cqv1.ClusterCheckpointQuotaList
		err := r.Cache.List(ctx, &l, client.UnsafeDisableDeepCopy)
		return l.Items, err
	})
}

// CachedClusterQuotas are the ClusterCheckpointQuotas as the cache holds them, without
// asking the apiserver: for a namespaced quota's admission, where cluster quotas only shape
// warnings (conflicts are between quotas of one kind), and a cluster quota a moment old
// cannot make them wrong for long. It saves the admission a round trip.
func (r *QuotaReader) CachedClusterQuotas(ctx context.Context) ([]cqv1.ClusterCheckpointQuota, error) {
	var l cqv1.ClusterCheckpointQuotaList
	if err := r.Cache.List(ctx, &l, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("reading ClusterCheckpointQuotas from the cache: %w", err)
	}
	return l.Items, nil
}

// NamespaceLabels are the labels of a namespace as the cache holds its metadata; known is
// false for a namespace the cache does not hold (yet): the caller then assumes that every
// namespace selector selects it, as policy.Describe does for an unknown namespace.
func (r *QuotaReader) NamespaceLabels(ctx context.Context, namespace string) (labels map[string]string, known bool, err error) {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	switch err := r.Cache.Get(ctx, client.ObjectKey{Name: namespace}, ns); {
	case apierrors.IsNotFound(err):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return ns.Labels, true, nil
}

// quotaObject is a pointer to either quota kind.
type quotaObject[T any] interface {
	*T
	client.Object
}

// current reads a scope of quotas of one kind: those the live metadata list names, from
// the cache where it holds the same resourceVersion, else from the apiserver. A quota in
// the cache that the live list does not name has been deleted and is left out.
func current[T any, P quotaObject[T]](ctx context.Context, r *QuotaReader, kind string, cached func() ([]T, error), opts ...client.ListOption) ([]T, error) {
	names := &metav1.PartialObjectMetadataList{}
	names.SetGroupVersionKind(cqv1.GroupVersion.WithKind(kind + "List"))
	if err := r.Live.List(ctx, names, opts...); err != nil {
		return nil, fmt.Errorf("listing the names of %ss: %w", kind, err)
	}
	deadline := time.Now().Add(cacheLag)
	for {
		items, err := cached()
		if err != nil {
			return nil, fmt.Errorf("reading %ss from the cache: %w", kind, err)
		}
		byName := make(map[string]P, len(items))
		for i := range items {
			byName[P(&items[i]).GetName()] = &items[i]
		}
		out := make([]T, 0, len(names.Items))
		var stale []client.ObjectKey
		for _, m := range names.Items {
			if c, ok := byName[m.Name]; ok && c.GetResourceVersion() == m.ResourceVersion {
				out = append(out, *c)
			} else {
				stale = append(stale, client.ObjectKey{Namespace: m.Namespace, Name: m.Name})
			}
		}
		if len(stale) == 0 {
			return out, nil
		}
		if time.Now().After(deadline) {
			return readLive[T, P](ctx, r.Live, kind, stale, out)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// readLive appends to out the quotas of keys as the apiserver has them; one deleted since
// the list is left out.
func readLive[T any, P quotaObject[T]](ctx context.Context, live client.Reader, kind string, keys []client.ObjectKey, out []T) ([]T, error) {
	for _, key := range keys {
		var obj T
		switch err := live.Get(ctx, key, P(&obj)); {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, fmt.Errorf("reading %s %s: %w", kind, key, err)
		default:
			out = append(out, obj)
		}
	}
	return out, nil
}
