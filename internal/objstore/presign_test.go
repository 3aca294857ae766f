package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/checkpoint-quota/checkpoint-quota/internal/objstore"
)

// A presigned GET reads its one object, for its time, and nothing else; it is signed only
// after the object is checked to be the Checkpoint's.
func TestPresignedGetReadsThatObjectOnly(t *testing.T) {
	_, st := startStore(t)
	ctx := context.Background()
	const uid = types.UID("7c2e")
	up := func(key string, size int) (objstore.Stored, string) {
		t.Helper()
		f, sum := writeArchive(t, size)
		stored, err := st.Upload(ctx, key, objstore.Archive{File: f, Size: int64(size), UID: uid, Namespace: "shop", FileName: filepath.Base(f.Name())})
		if err != nil {
			t.Fatal(err)
		}
		return stored, sum
	}
	one, oneSum := up("test/shop/web-0/app/7c2e.tar", 1<<20)
	parts, partsSum := up("test/shop/web-0/app/parts.tar", 12<<20)
	other, _ := up("test/other/web-0/app/7c2e.tar", 1<<20)
	hc := http.DefaultClient

	for name, tc := range map[string]struct {
		stored       objstore.Stored
		sum          string
		wantRecorded bool
	}{
		"one part":      {stored: one, sum: oneSum, wantRecorded: true},
		"several parts": {stored: parts, sum: partsSum},
	} {
		u, err := st.PresignedGet(ctx, objstore.Stored{Key: tc.stored.Key, SHA256: tc.sum, Size: tc.stored.Size}, uid, time.Minute)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var buf bytes.Buffer
		computed, recorded, n, err := objstore.DownloadURL(ctx, hc, u.String(), &buf)
		if err != nil || computed != tc.sum || n != tc.stored.Size {
			t.Fatalf("%s: DownloadURL = %s, %d bytes, %v; want %s, %d bytes", name, computed, n, err, tc.sum, tc.stored.Size)
		}
		if tc.wantRecorded != (recorded == tc.sum) {
			t.Errorf("%s: recorded SHA-256 %q; want it %v", name, recorded, tc.wantRecorded)
		}
	}

	u, err := st.PresignedGet(ctx, objstore.Stored{Key: one.Key, SHA256: oneSum, Size: one.Size}, uid, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	By := func(s string) { t.Log(s) }
	By("the same signature on another key, even of the same Checkpoint's namespace, is refused")
	for _, key := range []string{other.Key, parts.Key} {
		forged := *u
		forged.Path = "/archives/" + key
		_, _, _, err := objstore.DownloadURL(ctx, hc, forged.String(), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("the URL of %s read %s: %v; want 403", one.Key, key, err)
		}
		if err != nil && strings.Contains(err.Error(), "X-Amz-Signature") {
			t.Errorf("the error shows the URL: %v", err)
		}
	}
	By("it does not write: a PUT or DELETE with it is refused")
	for _, method := range []string{http.MethodPut, http.MethodDelete} {
		req, _ := http.NewRequestWithContext(ctx, method, u.String(), strings.NewReader("overwritten"))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			t.Errorf("%s with a GET URL: %s; want refused", method, resp.Status)
		}
	}
	if err := st.Verify(ctx, one, uid); err != nil {
		t.Fatalf("the object changed: %v", err)
	}

	By("it stops working when it expires")
	short, err := st.PresignedGet(ctx, objstore.Stored{Key: one.Key, SHA256: oneSum, Size: one.Size}, uid, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
	if _, _, _, err := objstore.DownloadURL(ctx, hc, short.String(), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("an expired URL: %v; want 403", err)
	}

	By("no URL for an object that is not the Checkpoint's, or not its bytes")
	if _, err := st.PresignedGet(ctx, objstore.Stored{Key: one.Key, SHA256: oneSum, Size: one.Size}, "someone-else", time.Minute); !errors.Is(err, objstore.ErrNotOurs) {
		t.Errorf("PresignedGet for another UID: %v; want ErrNotOurs", err)
	}
	if _, err := st.PresignedGet(ctx, objstore.Stored{Key: one.Key, SHA256: partsSum, Size: one.Size}, uid, time.Minute); err == nil {
		t.Error("PresignedGet with another SHA-256: no error")
	}
}

// A store that does not answer: DownloadURL says where it could not connect, never the URL.
func TestDownloadURLNamesTheStoreNotTheURL(t *testing.T) {
	_, _, _, err := objstore.DownloadURL(context.Background(), http.DefaultClient,
		"http://127.0.0.1:1/archives/k.tar?X-Amz-Signature=secret", &bytes.Buffer{})
	if !errors.Is(err, objstore.ErrUnreachable) || !strings.Contains(err.Error(), "http://127.0.0.1:1") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("DownloadURL = %v; want ErrUnreachable naming http://127.0.0.1:1 and not the signature", err)
	}
}
