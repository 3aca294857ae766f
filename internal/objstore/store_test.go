package objstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"k8s.io/apimachinery/pkg/types"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/objstore"
	"github.com/checkpoint-quota/checkpoint-quota/test/s3server"
)

func TestKeyHoldsTheNamespaceAndRefusesPaths(t *testing.T) {
	spec := cqv1.CheckpointStoreSpec{Prefix: "clusters/prod"}
	c := &cqv1.Checkpoint{}
	c.Namespace, c.UID = "shop", "0d5c"
	c.Spec.Archive = &cqv1.ArchiveSource{PodName: "web-0", ContainerName: "app"}
	key, err := objstore.KeyOf(spec, c)
	if err != nil || key != "clusters/prod/shop/web-0/app/0d5c.tar" {
		t.Fatalf("KeyOf = %q, %v; want clusters/prod/shop/web-0/app/0d5c.tar", key, err)
	}
	c.Spec.Archive.OrphanOf = "gone"
	if key, _ := objstore.KeyOf(spec, c); key != "clusters/prod/gone/web-0/app/0d5c.tar" {
		t.Errorf("an orphan's key is %q; want it under the namespace it was taken in", key)
	}
	for _, pod := range []string{"../other", "a/b", "..", ""} {
		c.Spec.Archive.PodName = pod
		if key, err := objstore.KeyOf(spec, c); err == nil {
			t.Errorf("KeyOf with pod %q = %q; want an error", pod, key)
		}
	}
}

// startStore starts the real S3 server with a bucket, and a client of it with 5 MiB
// parts (S3's smallest), so that a 12 MiB archive goes in three parts.
func startStore(t *testing.T) (*s3server.Server, *objstore.Store) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a real S3 server")
	}
	ctx := context.Background()
	srv, err := s3server.Start(ctx, t.TempDir())
	if errors.Is(err, s3server.ErrUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	if err := srv.MakeBucket(ctx, "archives"); err != nil {
		t.Fatal(err)
	}
	st, err := objstore.New(objstore.Config{
		Spec:        cqv1.CheckpointStoreSpec{Endpoint: srv.Endpoint, Bucket: "archives", Prefix: "test"},
		AccessKeyID: s3server.AccessKeyID, SecretAccessKey: s3server.SecretAccessKey, PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return srv, st
}

func writeArchive(t *testing.T, size int) (*os.File, string) {
	t.Helper()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	path := filepath.Join(t.TempDir(), "checkpoint-web-0_shop-app-2026-12-07T05:00:00Z.tar")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	sum := sha256.Sum256(data)
	return f, hex.EncodeToString(sum[:])
}

func TestUploadVerifyDownloadDelete(t *testing.T) {
	srv, st := startStore(t)
	ctx := context.Background()
	f, sum := writeArchive(t, 12<<20)
	const uid = types.UID("6b1d")
	stored, err := st.Upload(ctx, "test/shop/web-0/app/6b1d.tar", objstore.Archive{File: f, Size: 12 << 20, UID: uid, Namespace: "shop", FileName: filepath.Base(f.Name())})
	if err != nil {
		t.Fatal(err)
	}
	if stored.SHA256 != sum || stored.Size != 12<<20 {
		t.Fatalf("stored %+v; want SHA-256 %s and 12 MiB", stored, sum)
	}

	By := func(s string) { t.Log(s) }
	By("the object records the SHA-256 (in a tag: it is in parts) and the UID, and has the store's own checksum")
	info, err := srv.Client.StatObject(ctx, "archives", stored.Key, minio.StatObjectOptions{Checksum: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Metadata.Get("X-Amz-Meta-" + objstore.MetaSHA256); got != "" {
		t.Errorf("metadata SHA-256 %q of an archive in parts; want none (S3 takes metadata when an upload begins)", got)
	}
	if got, err := objstore.RecordedSHA256(ctx, srv.Client, "archives", info); err != nil || got != sum {
		t.Errorf("recorded SHA-256 (tag %s) %q, %v; want %s", objstore.TagSHA256, got, err, sum)
	}
	if info.ChecksumSHA256 != stored.Checksum || !strings.HasSuffix(stored.Checksum, "-3") {
		t.Errorf("the store's checksum %q, Upload's %q; want the same, of 3 parts", info.ChecksumSHA256, stored.Checksum)
	}
	if got := info.Metadata.Get("X-Amz-Meta-" + objstore.MetaUID); got != string(uid) {
		t.Errorf("metadata UID %q; want %s", got, uid)
	}

	By("a download is byte for byte the archive")
	var buf bytes.Buffer
	computed, recorded, n, err := st.Download(ctx, stored.Key, &buf)
	if err != nil || computed != sum || recorded != sum || n != 12<<20 {
		t.Fatalf("Download: computed %s recorded %s %d bytes, %v; want %s twice, 12 MiB", computed, recorded, n, err, sum)
	}

	By("a delete for another Checkpoint leaves the object alone")
	if err := st.Delete(ctx, stored.Key, "someone-else"); !errors.Is(err, objstore.ErrNotOurs) {
		t.Fatalf("Delete as another UID: %v; want ErrNotOurs", err)
	}
	if err := st.Verify(ctx, stored, uid); err != nil {
		t.Fatalf("the object is gone after a refused delete: %v", err)
	}
	if err := st.Delete(ctx, stored.Key, uid); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, stored.Key, uid); err != nil {
		t.Fatalf("a repeated delete: %v; want none", err)
	}
	if err := st.Verify(ctx, stored, uid); err == nil {
		t.Fatal("the object is still there after its delete")
	}
}

// Rebind gives an object to another Checkpoint in place: the bytes, size and SHA-256 stay,
// the old UID can no longer delete it, and a third Checkpoint cannot take it.
func TestRebindGivesTheObjectToAnotherCheckpoint(t *testing.T) {
	_, st := startStore(t)
	ctx := context.Background()
	f, sum := writeArchive(t, 20<<20)
	stored, err := st.Upload(ctx, "test/shop/web-0/app/old.tar", objstore.Archive{File: f, Size: 20 << 20, UID: "old", Namespace: "shop", FileName: filepath.Base(f.Name())})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Rebind(ctx, stored.Key, "someone-else", "new"); !errors.Is(err, objstore.ErrNotOurs) {
		t.Fatalf("Rebind from another UID: %v; want ErrNotOurs", err)
	}
	if err := st.Rebind(ctx, stored.Key, "old", "new"); err != nil {
		t.Fatal(err)
	}
	if err := st.Rebind(ctx, stored.Key, "old", "new"); err != nil {
		t.Fatalf("a repeated Rebind: %v; want none", err)
	}
	// As the agent verifies it later: from the Checkpoint's location.
	if err := st.Verify(ctx, objstore.Stored{Key: stored.Key, SHA256: sum, Size: 20 << 20}, "new"); err != nil {
		t.Fatalf("after Rebind: %v", err)
	}
	if err := st.Delete(ctx, stored.Key, "old"); !errors.Is(err, objstore.ErrNotOurs) {
		t.Fatalf("Delete as the old UID: %v; want ErrNotOurs", err)
	}
	var buf bytes.Buffer
	if computed, recorded, n, err := st.Download(ctx, stored.Key, &buf); err != nil || computed != sum || recorded != sum || n != 20<<20 {
		t.Fatalf("Download after Rebind: computed %s recorded %s %d bytes, %v; want %s twice, 20 MiB", computed, recorded, n, err, sum)
	}
}

func TestUploadRefusesAnArchiveOfAnotherSize(t *testing.T) {
	_, st := startStore(t)
	f, _ := writeArchive(t, 1<<20)
	_, err := st.Upload(context.Background(), "test/x.tar", objstore.Archive{File: f, Size: 2 << 20, UID: "u"})
	if err == nil {
		t.Fatal("uploaded an archive whose size is not its Checkpoint's")
	}
}

// The store killed during an upload: the upload fails, and no object is at the key, then
// or after the store comes back; once it is back, the upload goes through.
func TestStoreKilledMidUpload(t *testing.T) {
	srv, st := startStore(t)
	ctx := context.Background()
	f, sum := writeArchive(t, 64<<20)
	key := "test/shop/web-0/app/kill.tar"
	done := make(chan error, 1)
	go func() {
		_, err := st.Upload(ctx, key, objstore.Archive{File: f, Size: 64 << 20, UID: "k"})
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	srv.Kill()
	if err := <-done; err == nil {
		t.Skip("the upload finished before the store was killed; nothing to check on this machine")
	}
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client.StatObject(ctx, "archives", key, minio.StatObjectOptions{}); err == nil {
		t.Fatal("a half-written upload left an object at its key")
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	stored, err := st.Upload(ctx, key, objstore.Archive{File: f, Size: 64 << 20, UID: "k"})
	if err != nil || stored.SHA256 != sum {
		t.Fatalf("upload after the restart: %+v, %v", stored, err)
	}
}

// NotStored tells the store's answer that the archive is not there (the file it came from
// then holds the last bytes) from no answer at all (a store that is down says nothing of
// the object).
func TestNotStoredTellsAnAnswerFromNone(t *testing.T) {
	srv, st := startStore(t)
	ctx := context.Background()
	f, sum := writeArchive(t, 1<<20)
	const key = "test/shop/web-0/app/n0.tar"
	if _, err := st.Upload(ctx, key, objstore.Archive{File: f, Size: 1 << 20, UID: "n0"}); err != nil {
		t.Fatal(err)
	}
	right := objstore.Stored{Key: key, SHA256: sum, Size: 1 << 20}
	if err := st.Verify(ctx, right, "n0"); err != nil {
		t.Fatal(err)
	}
	answers := map[string]struct {
		st  objstore.Stored
		uid types.UID
	}{
		"no such object":       {objstore.Stored{Key: "test/shop/web-0/app/none.tar", SHA256: sum, Size: 1 << 20}, "n0"},
		"another Checkpoint's": {right, "someone-else"},
		"another size":         {objstore.Stored{Key: key, SHA256: sum, Size: 2 << 20}, "n0"},
		"another SHA-256":      {objstore.Stored{Key: key, SHA256: strings.Repeat("0", 64), Size: 1 << 20}, "n0"},
	}
	for name, a := range answers {
		if err := st.Verify(ctx, a.st, a.uid); err == nil || !objstore.NotStored(err) {
			t.Errorf("%s: Verify = %v; want an error that NotStored reads as the store's answer", name, err)
		}
	}
	expired, cancel := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel()
	<-expired.Done()
	if err := st.Verify(expired, right, "n0"); err == nil || objstore.NotStored(err) {
		t.Errorf("a check cut short: Verify = %v, NotStored %v; want an error that says nothing of the object", err, objstore.NotStored(err))
	}
	srv.Kill()
	if err := st.Verify(ctx, right, "n0"); err == nil || objstore.NotStored(err) {
		t.Errorf("the store killed: Verify = %v, NotStored %v; want an error that says nothing of the object", err, objstore.NotStored(err))
	}
}
