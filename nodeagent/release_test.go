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

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// When an archive disappears, the agent deletes its Checkpoint; should the file come back
// after a power failure brought the old record back, that record would read as a person's
// delete and remove the file. So the drop is on disk before the delete is sent: at the
// moment of the delete, the log cut to what was synced holds no record of that Checkpoint.
func TestReleaseOfAGoneFileDropsTheRecordDurablyFirst(t *testing.T) {
	tests := map[string]string{"a Checkpoint": "", "an orphan": "shop"}
	for name, orphanOf := range tests {
		t.Run(name, func(t *testing.T) {
			state := t.TempDir()
			k := fileKey{Dir: t.TempDir(), Name: "checkpoint-db-0_shop-redis-2026-12-04T10:00:00Z.tar"}
			rec := record{Path: k.Path(), Namespace: "shop", Name: "db-0", UID: "uid-1", OrphanOf: orphanOf,
				NamespaceUID: "ns-1", CRDUID: "crd-1", NodeUID: "node-1"}
			rs, _ := mustOpen(t, state)
			if err := rs.put(rec); err != nil {
				t.Fatal(err)
			}
			// A restart compacts the log, synced: the record is on disk.
			_ = rs.close()
			rs, _ = mustOpen(t, state)
			log := filepath.Join(state, logName)
			info, err := os.Stat(log)
			if err != nil {
				t.Fatal(err)
			}
			onDisk := info.Size()
			rs.sync = func(f *os.File) error {
				if err := f.Sync(); err != nil {
					return err
				}
				info, err := f.Stat()
				if err == nil {
					onDisk = info.Size()
				}
				return err
			}

			obj := &cqv1.Checkpoint{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db-0", UID: "uid-1"}}
			deletes := 0
			cl := interceptor.NewClient(fake.NewClientBuilder().WithScheme(Scheme).Build(), interceptor.Funcs{
				Delete: func(context.Context, client.WithWatch, client.Object, ...client.DeleteOption) error {
					deletes++
					// The node loses power now: what was not synced is lost.
					data, err := os.ReadFile(log)
					if err != nil {
						t.Fatal(err)
					}
					crashed := t.TempDir()
					if err := os.WriteFile(filepath.Join(crashed, logName), data[:onDisk], 0o600); err != nil {
						t.Fatal(err)
					}
					after, _ := mustOpen(t, crashed)
					if got := after.get(k.Path()); got != nil && !got.placeholder() {
						t.Errorf("after a power failure at the delete, the record is back: %+v", got)
					}
					return nil
				},
			})
			r := &Reconciler{Client: cl, records: rs}
			if err := r.release(context.Background(), k, obj); err != nil {
				t.Fatal(err)
			}
			if deletes != 1 {
				t.Errorf("%d deletes, want 1", deletes)
			}
		})
	}
}
