package objstore_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/objstore"
)

// storedCheckpoint is a Checkpoint as the agent stores it, its archive named as the kubelet names one.
func storedCheckpoint(uid types.UID, fileName string) *cqv1.Checkpoint {
	c := &cqv1.Checkpoint{}
	c.Namespace, c.UID = "shop", uid
	c.Spec.Archive = &cqv1.ArchiveSource{NodeName: "node-a", Directory: "/var/lib/kubelet/checkpoints", FileName: fileName,
		PodName: "web-0", PodUID: "5d0c7f3e-1a2b-4c3d-8e9f-0a1b2c3d4e5f", ContainerName: "app",
		CheckpointTime: metav1.NewTime(time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)), Runtime: "cri-o",
		Image: "registry.example/shop/web@sha256:" + strings.Repeat("ab", 32)}
	return c
}

// The record fits S3's 2 KB of user metadata with the rest, or is left out; it is ASCII.
func TestRecordOfFitsTheMetadataLimit(t *testing.T) {
	cases := map[string]struct {
		change func(*cqv1.ArchiveSource)
		want   bool
	}{
		"an archive as the kubelet writes it": {func(*cqv1.ArchiveSource) {}, true},
		"an orphan's copy": {func(a *cqv1.ArchiveSource) {
			a.OrphanOf = "gone"
			a.CopyOf = &cqv1.ArchiveCopy{Namespace: "gone", Name: "x", UID: "u", NodeName: "n"}
		}, true},
		"a directory of 1,900 bytes": {func(a *cqv1.ArchiveSource) { a.Directory = "/" + strings.Repeat("d", 1899) }, false},
		"an image of 1,024 bytes and a long directory": {func(a *cqv1.ArchiveSource) {
			a.Image, a.Directory = strings.Repeat("i", 1024), "/"+strings.Repeat("d", 800)
		}, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := storedCheckpoint("6b1d", "checkpoint-web-0_shop-app-2026-12-07T05:00:00Z.tar")
			tc.change(c.Spec.Archive)
			got := objstore.RecordOf(c)
			if (got != "") != tc.want {
				t.Fatalf("RecordOf = %q (%d bytes); want a record: %t", got, len(got), tc.want)
			}
		})
	}
	c := storedCheckpoint("6b1d", "checkpoint-web-0_shop-app-2026-12-07T05:00:00Z.tar")
	c.Spec.Archive.Directory = "/srv/prüfpunkte/😀"
	got := objstore.RecordOf(c)
	for _, r := range got {
		if r > 0x7e || r < 0x20 {
			t.Fatalf("RecordOf = %q holds %q; want ASCII only, for a header", got, r)
		}
	}
	if !strings.Contains(got, `pr\u00fcfpunkte/\ud83d\ude00`) {
		t.Errorf("RecordOf = %q; want the directory's characters escaped as JSON", got)
	}
}

// What an upload records of the Checkpoint's spec.archive comes back from the object, with
// its name, pod and container from the key, its size from the store; a Rebind keeps it.
func TestUploadRecordsTheArchiveForAnyAgent(t *testing.T) {
	_, st := startStore(t)
	ctx := context.Background()
	for name, size := range map[string]int{"one part": 1 << 20, "in parts": 12 << 20} {
		t.Run(name, func(t *testing.T) {
			f, sum := writeArchive(t, size)
			uid := types.UID("uid-" + strings.ReplaceAll(name, " ", "-"))
			c := storedCheckpoint(uid, filepath.Base(f.Name()))
			c.Spec.Archive.Directory = "/srv/prüfpunkte"
			c.Spec.Archive.SizeBytes = int64(size)
			key := objstore.Key("test", "shop", "web-0", "app", uid)
			if _, err := st.Upload(ctx, key, objstore.Archive{File: f, Size: int64(size), UID: uid, Namespace: "shop",
				FileName: c.Spec.Archive.FileName, Record: objstore.RecordOf(c)}); err != nil {
				t.Fatal(err)
			}
			d, err := st.Describe(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.Spec.Archive, d.Archive); diff != "" {
				t.Errorf("the archive the object records (-want +got):\n%s", diff)
			}
			if d.Owner != uid || d.SHA256 != sum || d.Size != int64(size) || d.Written.IsZero() {
				t.Errorf("Describe = owner %s, SHA-256 %s, %d bytes, written %s; want %s, %s, %d, a time", d.Owner, d.SHA256, d.Size, d.Written, uid, sum, size)
			}
			if err := st.Rebind(ctx, key, uid, "orphan"); err != nil {
				t.Fatal(err)
			}
			d, err = st.Describe(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.Spec.Archive, d.Archive); diff != "" || d.Owner != "orphan" || d.SHA256 != sum {
				t.Errorf("after Rebind: owner %s, SHA-256 %s; the archive (-want +got):\n%s", d.Owner, d.SHA256, diff)
			}
		})
	}
	t.Run("an older agent's object records nothing", func(t *testing.T) {
		f, _ := writeArchive(t, 1<<10)
		key := objstore.Key("test", "shop", "web-0", "app", "old")
		if _, err := st.Upload(ctx, key, objstore.Archive{File: f, Size: 1 << 10, UID: "old", Namespace: "shop", FileName: filepath.Base(f.Name())}); err != nil {
			t.Fatal(err)
		}
		if d, err := st.Describe(ctx, key); err != nil || d.Archive != nil || d.Owner != "old" {
			t.Errorf("Describe = %+v, %v; want owner old and no archive", d, err)
		}
	})
}
