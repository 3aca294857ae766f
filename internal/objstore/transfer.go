package objstore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"k8s.io/apimachinery/pkg/types"
)

// Verify checks with a HEAD that the object at st.Key has st's size, belongs to the
// Checkpoint uid and holds st's bytes: the SHA-256 checksum the store computed of what it
// received must be st.Checksum (when Upload saw the store answer with one) or, for an
// object of one part, st's SHA-256; and the SHA-256 the object records must be st's. The
// object is not read back.
func (s *Store) Verify(ctx context.Context, st Stored, uid types.UID) error {
	info, err := s.client.StatObject(ctx, s.spec.Bucket, st.Key, minio.StatObjectOptions{Checksum: true})
	if err != nil {
		return fmt.Errorf("verifying %s/%s: %w", s.spec.Bucket, st.Key, err)
	}
	if owner := info.Metadata.Get("X-Amz-Meta-" + MetaUID); owner != string(uid) {
		return fmt.Errorf("verifying %s/%s: %w (UID %q, not %q)", s.spec.Bucket, st.Key, ErrNotOurs, owner, uid)
	}
	if info.Size != st.Size {
		return fmt.Errorf("verifying %s/%s: %w: the store holds %d bytes, the archive has %d", s.spec.Bucket, st.Key, ErrNotTheArchive, info.Size, st.Size)
	}
	want := st.Checksum
	if raw, err := hex.DecodeString(st.SHA256); want == "" && err == nil && info.ChecksumSHA256 != "" && !strings.Contains(info.ChecksumSHA256, "-") {
		want = base64.StdEncoding.EncodeToString(raw)
	}
	if want != "" && info.ChecksumSHA256 != want {
		return fmt.Errorf("verifying %s/%s: %w: the store's SHA-256 checksum of the object is %q, the archive's %s", s.spec.Bucket, st.Key, ErrNotTheArchive, info.ChecksumSHA256, want)
	}
	recorded := info.Metadata.Get("X-Amz-Meta-" + MetaSHA256)
	if recorded == "" && st.Checksum != "" {
		// Upload wrote the tag just now, and the store's own checksum is checked.
		return nil
	}
	if recorded == "" {
		if recorded, err = RecordedSHA256(ctx, s.client, s.spec.Bucket, info); err != nil {
			return fmt.Errorf("verifying: %w", err)
		}
	}
	if recorded != st.SHA256 {
		return fmt.Errorf("verifying %s/%s: %w: the object's SHA-256 is %q, the archive's %s", s.spec.Bucket, st.Key, ErrNotTheArchive, recorded, st.SHA256)
	}
	return nil
}

// Delete removes the object at key if it belongs to the Checkpoint uid; a missing object
// is not an error (a repeated delete), an object of another Checkpoint is ErrNotOurs.
func (s *Store) Delete(ctx context.Context, key string, uid types.UID) error {
	info, err := s.client.StatObject(ctx, s.spec.Bucket, key, minio.StatObjectOptions{})
	if IsNotFound(err) {
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
	recorded, err = RecordedSHA256(ctx, s.client, s.spec.Bucket, info)
	return hex.EncodeToString(h.Sum(nil)), recorded, n, err
}

// Check says whether the bucket answers and whether an object can be written (and
// verified, as Upload does) and removed under the prefix; message says what failed.
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
	// Written as an archive is, so a store that cannot verify what it takes (no S3
	// checksums) says so here, not at its first upload.
	if _, err := s.putBytes(ctx, key, body, minio.PutObjectOptions{ServerSideEncryption: s.sse, DisableContentSha256: true,
		UserMetadata: map[string]string{}}); err != nil {
		return true, false, err.Error()
	}
	if err := s.client.RemoveObject(ctx, s.spec.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return true, false, "wrote a check object but could not remove it: " + err.Error()
	}
	return true, true, ""
}

// ErrNotTheArchive is returned by Verify when the store holds an object of other bytes at
// the key: another size, checksum or recorded SHA-256.
var ErrNotTheArchive = errors.New("the stored object is not the archive")

// NotStored says whether err is the store's answer that the archive is not there: no such
// object or bucket, an object of another Checkpoint, or one of other bytes. Any other
// error (a store that does not answer, refuses the credentials, fails) says nothing of the
// object, only that it could not be checked.
func NotStored(err error) bool {
	var resp minio.ErrorResponse
	return errors.Is(err, ErrNotOurs) || errors.Is(err, ErrNotTheArchive) || IsNotFound(err) ||
		(errors.As(err, &resp) && resp.Code == "NoSuchBucket")
}

// IsNotFound says whether err is the store's answer that no object is at the key.
func IsNotFound(err error) bool {
	var resp minio.ErrorResponse
	return errors.As(err, &resp) && (resp.StatusCode == 404 || resp.Code == "NoSuchKey")
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
	sum, err := RecordedSHA256(ctx, s.client, s.spec.Bucket, info)
	if err != nil {
		return fmt.Errorf("giving %s/%s to Checkpoint %s: %w", s.spec.Bucket, key, to, err)
	}
	// The copy records the SHA-256 in its metadata, whichever way the upload recorded it.
	meta := map[string]string{MetaUID: string(to), MetaSHA256: sum}
	for _, k := range []string{MetaNamespace, MetaFileName, MetaArchive} {
		if v := info.Metadata.Get("X-Amz-Meta-" + k); v != "" {
			meta[k] = v
		}
	}
	dst := minio.CopyDestOptions{Bucket: s.spec.Bucket, Object: key, ReplaceMetadata: true, UserMetadata: meta, Encryption: s.sse}
	// The copy is of the object HEAD saw, not one written since.
	src := minio.CopySrcOptions{Bucket: s.spec.Bucket, Object: key, MatchETag: info.ETag}
	if _, err := s.client.ComposeObject(ctx, dst, src); err != nil {
		return fmt.Errorf("giving %s/%s to Checkpoint %s: %w", s.spec.Bucket, key, to, err)
	}
	return nil
}
