package nodeagent

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/event"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// A node whose agent found no legacy Checkpoint never lists them again; one that found
// some lists them at every start until they are adopted.
func TestLegacyObjectsListedUntilNoneIsLeft(t *testing.T) {
	legacy := &cqv1.Checkpoint{ObjectMeta: metav1.ObjectMeta{Name: "old", Namespace: "shop",
		Labels:      map[string]string{cqv1.LegacyLabelNode: "node-a"},
		Annotations: map[string]string{cqv1.LegacyAnnotationFile: "/var/lib/kubelet/checkpoints/checkpoint-db-0_shop-pg-2026-01-01T00:00:00Z.tar"}}}
	tests := map[string]struct {
		objs      []client.Object
		wantFiles int
		// wantLists are the lists of two starts, one after the other.
		wantLists [2]int
	}{
		"none left":          {wantLists: [2]int{1, 0}},
		"one to adopt":       {objs: []client.Object{legacy}, wantFiles: 1, wantLists: [2]int{1, 1}},
		"another node's one": {objs: []client.Object{relabel(legacy, "node-b")}, wantLists: [2]int{1, 0}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			lists := 0
			c := interceptor.NewClient(fake.NewClientBuilder().WithScheme(Scheme).WithObjects(tc.objs...).Build(), interceptor.Funcs{
				List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
					lists++
					return c.List(ctx, list, opts...)
				},
			})
			dir := t.TempDir()
			for start := range 2 {
				files := make(chan event.TypedGenericEvent[fileKey], 10)
				before := lists
				if err := newLegacyObjects(c, "node-a", dir, files).Start(context.Background()); err != nil {
					t.Fatal(err)
				}
				if got := lists - before; got != tc.wantLists[start] {
					t.Errorf("start %d listed %d times, want %d", start+1, got, tc.wantLists[start])
				}
				if start == 0 && len(files) != tc.wantFiles {
					t.Errorf("queued %d archives to adopt, want %d", len(files), tc.wantFiles)
				}
			}
			_, err := os.Stat(filepath.Join(dir, legacyMarkerName))
			if marked := err == nil; marked != (tc.wantFiles == 0) {
				t.Errorf("marker written: %v, want %v", marked, tc.wantFiles == 0)
			}
		})
	}
}

func relabel(c *cqv1.Checkpoint, node string) *cqv1.Checkpoint {
	c = c.DeepCopy()
	c.Labels = map[string]string{cqv1.LegacyLabelNode: node}
	return c
}
