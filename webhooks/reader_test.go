package webhooks

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

func testScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(cqv1.AddToScheme(s))
	return s
}

// recordingReader records each read as "kind namespace" (List) or "kind namespace/name" (Get).
type recordingReader struct {
	client.Reader
	scheme *runtime.Scheme
	mu     sync.Mutex
	reads  []string
}

func (r *recordingReader) record(obj runtime.Object, what string) {
	gvk, _ := apiutil.GVKForObject(obj, r.scheme)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads = append(r.reads, gvk.Kind+" "+what)
}

func (r *recordingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	r.record(obj, key.String())
	return r.Reader.Get(ctx, key, obj, opts...)
}

func (r *recordingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	o := (&client.ListOptions{}).ApplyOptions(opts)
	r.record(list, o.Namespace)
	return r.Reader.List(ctx, list, opts...)
}

func (r *recordingReader) Reads() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reads)
}

// world is a cache and an apiserver that hold the same objects, as the manager's cache
// does once synced, recording what admission reads from each.
func world(t *testing.T, objs ...client.Object) (cache, live *recordingReader) {
	t.Helper()
	s := testScheme()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	store := fake.NewClientBuilder().WithScheme(s).WithObjects(append(objs, ns)...).Build()
	return &recordingReader{Reader: store, scheme: s}, &recordingReader{Reader: store, scheme: s}
}

// Admission of a cluster quota reads cluster quotas only, and of a namespaced quota the
// quotas of its namespace, the cluster quotas and its namespace: never every quota or
// namespace. The apiserver is asked for metadata lists of the same scopes only.
func TestAdmissionReadsItsScopeOnly(t *testing.T) {
	others := []client.Object{
		builder.Quota("other", "elsewhere").Total(5, "").Obj(),
		builder.Quota("shop", "shop").Total(9, "").Obj(),
		builder.ClusterQuota("default").PerNamespace(5, "").Obj(),
	}
	for name, tc := range map[string]struct {
		admit               func(*QuotaReader) error
		wantCache, wantLive []string
	}{
		"ClusterCheckpointQuota": {
			admit: func(r *QuotaReader) error {
				_, err := (&ClusterCheckpointQuotaWebhook{Quotas: r}).ValidateCreate(context.Background(),
					builder.ClusterQuota("new").PerPod(3, "").Obj())
				return err
			},
			wantCache: []string{"ClusterCheckpointQuotaList "},
			wantLive:  []string{"ClusterCheckpointQuotaList "},
		},
		"CheckpointQuota": {
			admit: func(r *QuotaReader) error {
				_, err := (&CheckpointQuotaWebhook{Quotas: r}).ValidateCreate(context.Background(),
					builder.Quota("new", "shop").PerPod(3, "").Obj())
				return err
			},
			wantCache: []string{"CheckpointQuotaList shop", "ClusterCheckpointQuotaList ", "Namespace /shop"},
			wantLive:  []string{"CheckpointQuotaList shop"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			cache, live := world(t, others...)
			if err := tc.admit(&QuotaReader{Cache: cache, Live: live}); err != nil {
				t.Fatalf("admission: %v", err)
			}
			if diff := cmp.Diff(tc.wantCache, cache.Reads()); diff != "" {
				t.Errorf("reads from the cache (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantLive, live.Reads()); diff != "" {
				t.Errorf("reads from the apiserver (-want +got):\n%s", diff)
			}
		})
	}
}

// A quota the apiserver has but the cache does not show yet (created a moment ago) is read
// from the apiserver, so that a conflicting quota right after it is still refused; a quota
// the cache holds but the apiserver no longer has is left out.
func TestAdmissionSeesWhatTheCacheHasNotYet(t *testing.T) {
	s := testScheme()
	first := builder.Quota("first", "shop").Total(20, "").Obj()
	gone := builder.Quota("gone", "shop").PerPod(1, "").Obj()
	live := fake.NewClientBuilder().WithScheme(s).WithObjects(first, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}).Build()
	cache := fake.NewClientBuilder().WithScheme(s).WithObjects(gone).Build()
	r := &QuotaReader{Cache: cache, Live: live}

	got, err := r.NamespaceQuotas(context.Background(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, q := range got {
		names = append(names, q.Name)
	}
	if diff := cmp.Diff([]string{"first"}, names); diff != "" {
		t.Errorf("quotas (-want +got):\n%s", diff)
	}

	_, err = (&CheckpointQuotaWebhook{Quotas: r}).ValidateCreate(context.Background(), builder.Quota("second", "shop").Total(10, "").Obj())
	if err == nil || !strings.Contains(err.Error(), "conflicts with CheckpointQuota shop/first") {
		t.Errorf("a second quota setting total.checkpoints: want a conflict naming the first, got %v", err)
	}
}
