package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"time"

	"github.com/minio/minio-go/v7"
	"k8s.io/apimachinery/pkg/types"
)

// Archive is what is uploaded: an open archive file and whose it is.
type Archive struct {
	// File is the archive, open for reading; Upload reads it from its start, twice.
	File *os.File
	// Size is the size the Checkpoint says; an archive of another size is not uploaded.
	Size      int64
	UID       types.UID
	Namespace string
	FileName  string
}

// Stored is an object that Upload wrote and verified.
type Stored struct {
	Key    string
	SHA256 string
	Size   int64
}

// Upload streams the archive to key and verifies it. The SHA-256 goes into the object's
// metadata, which S3 takes only when the upload begins, so the archive is read twice:
// once to hash it, then while it streams, hashing again; the upload is aborted if the two
// differ (the file changed). Multipart parts are sent one at a time, each with its MD5,
// which the store checks, so memory holds one part. An incomplete multipart upload is no
// object: a store that fails midway leaves nothing at the key. Only once a HEAD of the key
// shows the size, the SHA-256 and the Checkpoint's UID is the archive Stored.
func (s *Store) Upload(ctx context.Context, key string, a Archive) (Stored, error) {
	sum, n, err := hashFrom(a.File, sha256.New())
	if err != nil {
		return Stored{}, fmt.Errorf("reading the archive: %w", err)
	}
	if n != a.Size {
		return Stored{}, fmt.Errorf("the archive has %d bytes where its Checkpoint says %d: it changed, and is not uploaded", n, a.Size)
	}
	if _, err := a.File.Seek(0, io.SeekStart); err != nil {
		return Stored{}, err
	}
	streamed := &hashingReader{r: a.File, h: sha256.New()}
	opts := minio.PutObjectOptions{
		ContentType:          "application/x-tar",
		PartSize:             s.part,
		SendContentMd5:       true,
		ServerSideEncryption: s.sse,
		UserMetadata: map[string]string{
			MetaSHA256: sum, MetaUID: string(a.UID), MetaNamespace: a.Namespace, MetaFileName: a.FileName,
		},
	}
	if _, err := s.client.PutObject(ctx, s.spec.Bucket, key, streamed, a.Size, opts); err != nil {
		return Stored{}, fmt.Errorf("uploading to %s/%s: %w", s.spec.Bucket, key, err)
	}
	if got := hex.EncodeToString(streamed.h.Sum(nil)); got != sum || streamed.n != a.Size {
		// The bytes sent are not those hashed: remove what was stored under the wrong sum.
		_ = s.client.RemoveObject(ctx, s.spec.Bucket, key, minio.RemoveObjectOptions{})
		return Stored{}, fmt.Errorf("the archive changed while it was uploaded (SHA-256 %s, then %s): the object is removed and the file kept", sum, got)
	}
	stored := Stored{Key: key, SHA256: sum, Size: a.Size}
	if err := s.Verify(ctx, stored, a.UID); err != nil {
		return Stored{}, err
	}
	return stored, nil
}

// Verify checks with a HEAD that the object at st.Key has st's size and SHA-256 and belongs
// to the Checkpoint uid.
func (s *Store) Verify(ctx context.Context, st Stored, uid types.UID) error {
	info, err := s.client.StatObject(ctx, s.spec.Bucket, st.Key, minio.StatObjectOptions{})
	if err != nil {
		return fmt.Errorf("verifying %s/%s: %w", s.spec.Bucket, st.Key, err)
	}
	meta := info.Metadata
	switch {
	case meta.Get("X-Amz-Meta-"+MetaUID) != string(uid):
		return fmt.Errorf("verifying %s/%s: %w (UID %q, not %q)", s.spec.Bucket, st.Key, ErrNotOurs, meta.Get("X-Amz-Meta-"+MetaUID), uid)
	case info.Size != st.Size:
		return fmt.Errorf("verifying %s/%s: the store holds %d bytes, the archive has %d", s.spec.Bucket, st.Key, info.Size, st.Size)
	case meta.Get("X-Amz-Meta-"+MetaSHA256) != st.SHA256:
		return fmt.Errorf("verifying %s/%s: the object's SHA-256 is %q, the archive's %s", s.spec.Bucket, st.Key, meta.Get("X-Amz-Meta-"+MetaSHA256), st.SHA256)
	}
	return nil
}

// Delete removes the object at key if it belongs to the Checkpoint uid; a missing object
// is not an error (a repeated delete), an object of another Checkpoint is ErrNotOurs.
func (s *Store) Delete(ctx context.Context, key string, uid types.UID) error {
	info, err := s.client.StatObject(ctx, s.spec.Bucket, key, minio.StatObjectOptions{})
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s/%s before deleting it: %w", s.spec.Bucket, key, err)
	}
	if owner := info.Metadata.Get("X-Amz-Meta-" + MetaUID); owner != string(uid) {
		return fmt.Errorf("deleting %s/%s: %w (UID %q, not %q)", s.spec.Bucket, key, ErrNotOurs, owner, uid)
	}
	return s.client.RemoveObject(ctx, s.spec.Bucket, key, minio.RemoveObjectOptions{})
}

// Download writes the object at key to w and returns its SHA-256 as computed from the
// bytes written, and as the object's metadata records it: the caller compares them.
func (s *Store) Download(ctx context.Context, key string, w io.Writer) (computed, recorded string, n int64, err error) {
	obj, err := s.client.GetObject(ctx, s.spec.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return "", "", 0, err
	}
	defer func() { _ = obj.Close() }()
	info, err := obj.Stat()
	if err != nil {
		return "", "", 0, fmt.Errorf("reading %s/%s: %w", s.spec.Bucket, key, err)
	}
	h := sha256.New()
	n, err = io.Copy(io.MultiWriter(w, h), obj)
	if err != nil {
		return "", "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), info.Metadata.Get("X-Amz-Meta-" + MetaSHA256), n, nil
}

// Check says whether the bucket answers and whether an object can be written and removed
// under the prefix; message says what failed.
func (s *Store) Check(ctx context.Context, node string) (reachable, writable bool, message string) {
	ok, err := s.client.BucketExists(ctx, s.spec.Bucket)
	switch {
	case err != nil:
		return false, false, err.Error()
	case !ok:
		return false, false, fmt.Sprintf("bucket %q does not exist", s.spec.Bucket)
	}
	key := Key(s.spec.Prefix, ".checks", node, "", types.UID(fmt.Sprint(time.Now().UnixNano())))
	body := []byte("written by checkpoint-quota's node agent to check that it can write here; removed at once\n")
	if _, err := s.client.PutObject(ctx, s.spec.Bucket, key, bytes.NewReader(body), int64(len(body)),
		minio.PutObjectOptions{ServerSideEncryption: s.sse}); err != nil {
		return true, false, err.Error()
	}
	if err := s.client.RemoveObject(ctx, s.spec.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return true, false, "wrote a check object but could not remove it: " + err.Error()
	}
	return true, true, ""
}

func isNotFound(err error) bool {
	var resp minio.ErrorResponse
	return errors.As(err, &resp) && (resp.StatusCode == 404 || resp.Code == "NoSuchKey")
}

type hashingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

// Read hides the file's ReadAt from the client, which would otherwise read parts out of
// order and in parallel, past the hash.
func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

func hashFrom(r io.Reader, h hash.Hash) (string, int64, error) {
	n, err := io.Copy(h, r)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// Object is one object of the store: its key and when it was written.
type Object struct {
	Key          string
	LastModified time.Time
}

// Objects calls fn with each object under the store's prefix, in the order of their keys,
// until fn returns false. An incomplete multipart upload is no object.
func (s *Store) Objects(ctx context.Context, fn func(Object) bool) error {
	prefix := ""
	if p := path.Join(s.spec.Prefix); p != "" && p != "." {
		prefix = p + "/"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing when fn stops early
	for o := range s.client.ListObjects(ctx, s.spec.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return fmt.Errorf("listing %s/%s: %w", s.spec.Bucket, prefix, o.Err)
		}
		if !fn(Object{Key: o.Key, LastModified: o.LastModified}) {
			return nil
		}
	}
	return ctx.Err()
}

// Rebind gives the object at key to the Checkpoint to, from the Checkpoint from: a
// server-side copy onto itself with the same metadata but the UID (no byte leaves the
// store). An archive whose Checkpoint is published again under another UID (its namespace
// deleted, it becomes an orphan) keeps its object that way. An object already to's is
// left as it is; one of any other Checkpoint is ErrNotOurs.
func (s *Store) Rebind(ctx context.Context, key string, from, to types.UID) error {
	info, err := s.client.StatObject(ctx, s.spec.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return fmt.Errorf("reading %s/%s before giving it to Checkpoint %s: %w", s.spec.Bucket, key, to, err)
	}
	switch owner := info.Metadata.Get("X-Amz-Meta-" + MetaUID); owner {
	case string(to):
		return nil
	case string(from):
	default:
		return fmt.Errorf("giving %s/%s to Checkpoint %s: %w (UID %q, not %q)", s.spec.Bucket, key, to, ErrNotOurs, owner, from)
	}
	meta := map[string]string{MetaUID: string(to)}
	for _, k := range []string{MetaSHA256, MetaNamespace, MetaFileName} {
		meta[k] = info.Metadata.Get("X-Amz-Meta-" + k)
	}
	dst := minio.CopyDestOptions{Bucket: s.spec.Bucket, Object: key, ReplaceMetadata: true, UserMetadata: meta, Encryption: s.sse}
	// The copy is of the object HEAD saw, not one written since.
	src := minio.CopySrcOptions{Bucket: s.spec.Bucket, Object: key, MatchETag: info.ETag}
	if _, err := s.client.ComposeObject(ctx, dst, src); err != nil {
		return fmt.Errorf("giving %s/%s to Checkpoint %s: %w", s.spec.Bucket, key, to, err)
	}
	return nil
}
