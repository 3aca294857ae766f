package webhooks

import (
	"context"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// BenchmarkAdmission times the validating webhooks' own work, in process, against the
// tenants benchmark's world (10,000 namespaces, 4,980 maximal CheckpointQuotas, one per
// namespace, and 20 maximal ClusterCheckpointQuotas) held in memory as the manager's cache
// holds it: what one admission costs the manager in CPU and allocations, without the
// kube-apiserver and without the machine's load (make bench-tenants times the whole
// admission). The reads answer from maps, as an informer's indexes do.
func BenchmarkAdmission(b *testing.B) {
	w := &memoryWorld{quotas: map[string][]cqv1.CheckpointQuota{}, namespaces: map[string]map[string]string{}}
	for i := range 10000 {
		w.namespaces[fmt.Sprintf("tenant-%05d", i)] = map[string]string{"tenant": fmt.Sprint(i)}
	}
	for i := range 4980 {
		ns := fmt.Sprintf("tenant-%05d", i)
		q := benchMaximalQuota("maximal", ns, i)
		q.UID, q.Generation, q.ResourceVersion = types.UID("uid-"+ns), 1, "1"
		cached(q)
		w.quotas[ns] = append(w.quotas[ns], *q)
	}
	for i := range 20 {
		q := benchMaximalClusterQuota(fmt.Sprintf("tenants-%02d", i), i)
		q.UID, q.Generation, q.ResourceVersion = types.UID("uid-"+q.Name), 1, "1"
		cached(q)
		w.cluster = append(w.cluster, *q)
	}
	r := &QuotaReader{Cache: w, Live: w}
	withPolicies(r)
	ctx := context.Background()
	b.Run("ClusterCheckpointQuota", func(b *testing.B) {
		wh := &ClusterCheckpointQuotaWebhook{Quotas: r}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := wh.ValidateCreate(ctx, benchMaximalClusterQuota(fmt.Sprintf("probe-%d", i), 1000+i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CheckpointQuota", func(b *testing.B) {
		wh := &CheckpointQuotaWebhook{Quotas: r}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := wh.ValidateCreate(ctx, benchMaximalQuota("probe", fmt.Sprintf("tenant-%05d", i*37%4980), 100000+i)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// memoryWorld answers the reads of QuotaReader, cached and live, from maps.
type memoryWorld struct {
	quotas     map[string][]cqv1.CheckpointQuota
	cluster    []cqv1.ClusterCheckpointQuota
	namespaces map[string]map[string]string
}

func (w *memoryWorld) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	labels, known := w.namespaces[key.Name]
	if !ok || !known {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, key.Name)
	}
	m.Name, m.Labels = key.Name, labels
	return nil
}

func (w *memoryWorld) List(_ context.Context, list client.ObjectList, opts ...client.ListOption) error {
	o := (&client.ListOptions{}).ApplyOptions(opts)
	switch l := list.(type) {
	case *cqv1.CheckpointQuotaList:
		l.Items = w.quotas[o.Namespace]
	case *cqv1.ClusterCheckpointQuotaList:
		l.Items = w.cluster
	case *metav1.PartialObjectMetadataList:
		if strings.HasPrefix(l.GetObjectKind().GroupVersionKind().Kind, "Cluster") {
			for i := range w.cluster {
				l.Items = append(l.Items, metav1.PartialObjectMetadata{ObjectMeta: *w.cluster[i].ObjectMeta.DeepCopy()})
			}
		} else {
			for i := range w.quotas[o.Namespace] {
				l.Items = append(l.Items, metav1.PartialObjectMetadata{ObjectMeta: *w.quotas[o.Namespace][i].ObjectMeta.DeepCopy()})
			}
		}
	default:
		return fmt.Errorf("memoryWorld lists no %T", list)
	}
	return nil
}

func benchPadded(s string, n int, fill byte) string {
	return s + strings.Repeat(string(fill), n-len(s))
}

func benchLabelKey(seed, i int) string {
	label := func(j int) string { return benchPadded(fmt.Sprintf("k%d-%d-%d", seed, i, j), 63, 'k') }
	return label(0) + "." + label(1) + "." + label(2) + "." + benchPadded(fmt.Sprintf("k%d", i), 61, 'k') + "/" + benchPadded(fmt.Sprintf("n%d-%d", seed, i), 63, 'n')
}

func benchSelector(seed int) *cqv1.LabelSelector {
	s := &cqv1.LabelSelector{MatchLabels: map[string]string{}}
	for i := range 8 {
		s.MatchLabels[benchLabelKey(seed, i)] = benchPadded(fmt.Sprintf("v%d-%d-0", seed, i), 63, 'v')
	}
	for i := range 4 {
		r := cqv1.LabelSelectorRequirement{Key: benchLabelKey(seed, 8+i), Operator: metav1.LabelSelectorOpIn}
		for j := range 8 {
			r.Values = append(r.Values, benchPadded(fmt.Sprintf("v%d-%d-%d", seed, 8+i, j), 63, 'v'))
		}
		s.MatchExpressions = append(s.MatchExpressions, r)
	}
	return s
}

func benchTarget(seed int) *cqv1.QuotaTarget {
	t := &cqv1.QuotaTarget{PodSelector: benchSelector(seed)}
	for i := range 16 {
		t.PodNames = append(t.PodNames, benchPadded(fmt.Sprintf("pod-%d-%d-", seed, i), 253, 'p'))
	}
	for i := range 8 {
		t.ContainerNames = append(t.ContainerNames, benchPadded(fmt.Sprintf("c-%d-%d-", seed, i), 63, 'c'))
	}
	return t
}

func benchMaximalQuota(name, namespace string, seed int) *cqv1.CheckpointQuota {
	q := builder.Quota(name, namespace).PerPod(20, "10Gi").PerContainer(5, "2Gi").Total(100, "50Gi").MaxCheckpointSize("1Gi").MaxAge("168h").Obj()
	q.Spec.Target = benchTarget(seed)
	DefaultCheckpointQuota(q)
	return q
}

func benchMaximalClusterQuota(name string, seed int) *cqv1.ClusterCheckpointQuota {
	q := builder.ClusterQuota(name).PerNamespace(50, "20Gi").PerPod(20, "10Gi").PerContainer(5, "2Gi").MaxCheckpointSize("1Gi").MaxAge("168h").Obj()
	q.Spec.NamespaceSelector = benchSelector(seed)
	q.Spec.Target = benchTarget(seed)
	DefaultClusterCheckpointQuota(q)
	return q
}
