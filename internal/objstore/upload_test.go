package objstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"golang.org/x/sync/errgroup"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/objstore"
	"github.com/checkpoint-quota/checkpoint-quota/test/s3server"
)

// An archive of one part goes in one PUT: its SHA-256 in its metadata, and the store's own
// SHA-256 checksum of the bytes it received is the same sum.
func TestUploadOfOnePartRecordsItsSHA256(t *testing.T) {
	srv, st := startStore(t)
	ctx := context.Background()
	f, sum := writeArchive(t, 1<<20)
	stored, err := st.Upload(ctx, "test/shop/web-0/app/one.tar", objstore.Archive{File: f, Size: 1 << 20, UID: "one"})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := hex.DecodeString(sum)
	checksum := base64.StdEncoding.EncodeToString(raw)
	if stored.SHA256 != sum || stored.Checksum != checksum {
		t.Fatalf("stored %+v; want SHA-256 %s, checksum %s", stored, sum, checksum)
	}
	info, err := srv.Client.StatObject(ctx, "archives", stored.Key, minio.StatObjectOptions{Checksum: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Metadata.Get("X-Amz-Meta-" + objstore.MetaSHA256); got != sum {
		t.Errorf("metadata SHA-256 %q; want %s", got, sum)
	}
	if info.ChecksumSHA256 != checksum {
		t.Errorf("the store's checksum %q; want %s, the file's SHA-256", info.ChecksumSHA256, checksum)
	}
}

// A store whose object is altered or truncated after the upload (same UID and SHA-256 in
// its metadata, other bytes): Verify fails, whether from what Upload returned or from the
// Checkpoint's location (the agent's check before it removes a file left on the node).
func TestVerifyRefusesAnAlteredObject(t *testing.T) {
	srv, st := startStore(t)
	ctx := context.Background()
	for name, size := range map[string]int{"one part": 1 << 20, "three parts": 12 << 20} {
		f, sum := writeArchive(t, size)
		key := "test/shop/web-0/app/" + strings.ReplaceAll(name, " ", "-") + ".tar"
		stored, err := st.Upload(ctx, key, objstore.Archive{File: f, Size: int64(size), UID: "u"})
		if err != nil {
			t.Fatal(err)
		}
		fromLocation := objstore.Stored{Key: key, SHA256: sum, Size: int64(size)}
		if err := st.Verify(ctx, fromLocation, "u"); err != nil {
			t.Fatalf("%s: Verify of the object as uploaded: %v", name, err)
		}
		data, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		altered := bytes.Clone(data)
		altered[size/2] ^= 0xff
		for what, body := range map[string][]byte{"altered": altered, "truncated": data[:size-1]} {
			// Written as an S3 client of today writes: with the store's SHA-256 checksum of
			// its bytes, and the metadata of the archive.
			s := sha256.Sum256(body)
			meta := map[string]string{objstore.MetaUID: "u", objstore.MetaSHA256: sum, "x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(s[:])}
			if _, err := (minio.Core{Client: srv.Client}).PutObject(ctx, "archives", key, bytes.NewReader(body), int64(len(body)), "", "",
				minio.PutObjectOptions{UserMetadata: meta}); err != nil {
				t.Fatal(err)
			}
			if err := st.Verify(ctx, stored, "u"); err == nil {
				t.Errorf("%s, %s: Verify of what Upload returned passed", name, what)
			}
			if err := st.Verify(ctx, fromLocation, "u"); err == nil || !objstore.NotStored(err) {
				t.Errorf("%s, %s: Verify from the location = %v; want the store's answer that it is not the archive", name, what, err)
			}
		}
	}
}

// A file written to while it is uploaded is not stored as if whole: the upload fails and
// leaves no object at the key.
func TestUploadRefusesAFileChangedWhileUploading(t *testing.T) {
	srv, st := startStore(t)
	ctx := context.Background()
	const size = 40 << 20
	f, _ := writeArchive(t, size)
	w, err := os.OpenFile(f.Name(), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Close() }()
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		// Rewrites the last byte, which the last part carries, until the upload ends.
		for b := byte(0); ; b++ {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
			_, _ = w.WriteAt([]byte{b}, size-1)
		}
	}()
	key := "test/shop/web-0/app/changing.tar"
	_, err = st.Upload(ctx, key, objstore.Archive{File: f, Size: size, UID: "c"})
	close(done)
	<-stopped
	if err == nil || !strings.Contains(err.Error(), "changed while it was uploaded") {
		t.Fatalf("Upload of a file written meanwhile: %v; want it refused as changed", err)
	}
	if _, err := srv.Client.StatObject(ctx, "archives", key, minio.StatObjectOptions{}); err == nil {
		t.Fatal("an object is at the key of a file that changed during its upload")
	}
}

// Uploads that share Buffers of one part wait for each other and all go through.
func TestUploadsShareTheirBuffers(t *testing.T) {
	srv, _ := startStore(t)
	ctx := context.Background()
	st, err := objstore.New(objstore.Config{
		Spec:        cqv1.CheckpointStoreSpec{Endpoint: srv.Endpoint, Bucket: "archives", Prefix: "test"},
		AccessKeyID: s3server.AccessKeyID, SecretAccessKey: s3server.SecretAccessKey, PartSize: 5 << 20,
		Buffers: objstore.NewBuffers(5 << 20)})
	if err != nil {
		t.Fatal(err)
	}
	var g errgroup.Group
	for i := range 4 {
		f, sum := writeArchive(t, 12<<20)
		g.Go(func() error {
			key := fmt.Sprintf("test/shop/web-0/app/shared-%d.tar", i)
			stored, err := st.Upload(ctx, key, objstore.Archive{File: f, Size: 12 << 20, UID: "s"})
			if err == nil && stored.SHA256 != sum {
				err = fmt.Errorf("%s: SHA-256 %s, want %s", key, stored.SHA256, sum)
			}
			if err == nil {
				err = st.Verify(ctx, objstore.Stored{Key: key, SHA256: sum, Size: 12 << 20}, "s")
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// A store that answers without S3 checksums (here the real server behind a proxy that
// drops them from its answers): an upload is refused and leaves no object, and the store
// check says why, so that a node shows it in the store's Writable condition.
func TestAStoreWithoutChecksumsIsRefused(t *testing.T) {
	srv, _ := startStore(t)
	ctx := context.Background()
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(r *http.Response) error {
		for h := range r.Header {
			if strings.HasPrefix(strings.ToLower(h), "x-amz-checksum-") {
				r.Header.Del(h)
			}
		}
		return nil
	}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)
	st, err := objstore.New(objstore.Config{
		Spec:        cqv1.CheckpointStoreSpec{Endpoint: front.URL, Bucket: "archives", Prefix: "test"},
		AccessKeyID: s3server.AccessKeyID, SecretAccessKey: s3server.SecretAccessKey, PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := writeArchive(t, 1<<20)
	key := "test/shop/web-0/app/unchecked.tar"
	if _, err := st.Upload(ctx, key, objstore.Archive{File: f, Size: 1 << 20, UID: "n"}); !errors.Is(err, objstore.ErrNoChecksums) {
		t.Fatalf("Upload to a store without checksums: %v; want ErrNoChecksums", err)
	}
	if _, err := srv.Client.StatObject(ctx, "archives", key, minio.StatObjectOptions{}); err == nil {
		t.Error("an object is at the key of an upload the store could not verify")
	}
	reachable, writable, message := st.Check(ctx, "node-a")
	if !reachable || writable || !strings.Contains(message, "flexible checksums") {
		t.Errorf("Check: reachable %v, writable %v, %q; want reachable, not writable, saying why", reachable, writable, message)
	}
}
