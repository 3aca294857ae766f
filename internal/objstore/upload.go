package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/tags"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/types"
)

// TagSHA256 is the object tag that records the SHA-256 of an archive uploaded in parts:
// S3 takes user metadata only when an upload begins, and the SHA-256 of the whole file is
// known only once its last part is read.
const TagSHA256 = "checkpoint-sha256"

// S3's flexible checksum headers (x-amz-checksum-*): the store computes the SHA-256 of
// each request's body itself, refuses a body whose sum is not the one sent, and keeps it
// on the object, where a HEAD in checksum mode shows it.
const (
	headerChecksumSHA256    = "X-Amz-Checksum-Sha256"
	headerChecksumAlgorithm = "X-Amz-Checksum-Algorithm"
)

// Archive is what is uploaded: an open archive file and whose it is.
type Archive struct {
	// File is the archive, open for reading; Upload reads it from its start, once.
	File *os.File
	// Size is the size the Checkpoint says; an archive of another size is not uploaded.
	Size      int64
	UID       types.UID
	Namespace string
	FileName  string
	// Record is the rest of the Checkpoint's spec.archive (RecordOf), kept as MetaArchive.
	Record string
}

// Stored is an object that Upload wrote and verified.
type Stored struct {
	Key    string
	SHA256 string
	Size   int64
	// Checksum is the SHA-256 checksum the store computed of what it received, as S3
	// writes it (base64; "-N" after it for an object of N parts, the SHA-256 of the
	// parts' sums). Empty when not known (a Stored made from a Checkpoint's location).
	Checksum string
}

// partsInFlight is how many parts of one upload are sent at once, each from its own
// buffer, when Buffers have room for the second.
const partsInFlight = 2

// Upload streams the archive to key in one pass and verifies it. Each piece is read once
// into one buffer (the whole archive when it fits in one part, else one part at a time),
// hashed there, and sent from there: so the SHA-256 recorded is that of the bytes the
// store received, and memory holds one part (two, sent at once, when Buffers have room).
// Each request carries its body's SHA-256 as S3's checksum (x-amz-checksum-sha256, a
// signed header): the store computes the sum of what it receives, refuses a body whose
// sum differs, keeps it on the object, and answers with it. The archive is Stored only when the store's answer to the request that made
// the object (the PUT, or the completion of a multipart upload) carries the checksum
// computed here: the store's own word on what it committed, so the object is neither read
// back nor looked up again. An archive of one part records its SHA-256 in the object's
// metadata when the PUT begins; one of several parts in a tag once its last part is read.
// A file whose size, mtime or ctime changed during the upload changed: its object is
// removed and the file kept. An incomplete multipart upload is no object: a store that
// fails midway leaves nothing at the key.
func (s *Store) Upload(ctx context.Context, key string, a Archive) (Stored, error) {
	before, err := fileStateOf(a.File)
	if err != nil {
		return Stored{}, fmt.Errorf("reading the archive: %w", err)
	}
	if before.size != a.Size {
		return Stored{}, fmt.Errorf("the archive has %d bytes where its Checkpoint says %d: it changed, and is not uploaded", before.size, a.Size)
	}
	buf, err := s.buffers.get(ctx, min(a.Size, int64(s.part)))
	if err != nil {
		return Stored{}, err
	}
	defer s.buffers.put(buf)
	var stored Stored
	if a.Size <= int64(s.part) {
		stored, err = s.putWhole(ctx, key, a, buf)
	} else {
		stored, err = s.putParts(ctx, key, a, buf)
	}
	if err != nil {
		return Stored{}, err
	}
	if after, err := fileStateOf(a.File); err != nil || after != before {
		// The bytes sent are those hashed, but they may mix two versions of the file.
		_ = s.client.RemoveObject(ctx, s.spec.Bucket, key, minio.RemoveObjectOptions{})
		return Stored{}, fmt.Errorf("the archive changed while it was uploaded (%s, then %s): the object is removed and the file kept", before, after)
	}
	if stored.Size > int64(s.part) {
		t, err := tags.NewTags(map[string]string{TagSHA256: stored.SHA256}, true)
		if err == nil {
			err = s.client.PutObjectTagging(ctx, s.spec.Bucket, key, t, minio.PutObjectTaggingOptions{})
		}
		if err != nil {
			return Stored{}, fmt.Errorf("recording the SHA-256 of %s/%s in its tag %s: %w", s.spec.Bucket, key, TagSHA256, err)
		}
	}
	return stored, nil
}

// putOptions are the options of an archive's PUT or multipart upload: its metadata.
func (s *Store) putOptions(a Archive) minio.PutObjectOptions {
	opts := minio.PutObjectOptions{
		ContentType:          "application/x-tar",
		ServerSideEncryption: s.sse,
		// The body's SHA-256 goes as its checksum, computed once here; the payload is not
		// hashed again to sign it (UNSIGNED-PAYLOAD, as AWS's SDKs send with a checksum).
		DisableContentSha256: true,
		UserMetadata:         map[string]string{MetaUID: string(a.UID), MetaNamespace: a.Namespace, MetaFileName: a.FileName},
	}
	if a.Record != "" {
		opts.UserMetadata[MetaArchive] = a.Record
	}
	return opts
}

// putWhole uploads an archive of one part with one PUT from buf (its size), its SHA-256
// in its metadata.
func (s *Store) putWhole(ctx context.Context, key string, a Archive, buf []byte) (Stored, error) {
	if err := readAt(a.File, buf, 0, a.Size); err != nil {
		return Stored{}, err
	}
	return s.putBytes(ctx, key, buf, s.putOptions(a))
}

// putBytes writes buf at key with one PUT, its SHA-256 in the metadata and as its checksum.
func (s *Store) putBytes(ctx context.Context, key string, buf []byte, opts minio.PutObjectOptions) (Stored, error) {
	sum := sha256.Sum256(buf)
	stored := Stored{Key: key, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(buf)), Checksum: base64.StdEncoding.EncodeToString(sum[:])}
	opts.UserMetadata[MetaSHA256] = stored.SHA256
	opts.UserMetadata[headerChecksumSHA256] = stored.Checksum
	info, err := minio.Core{Client: s.client}.PutObject(ctx, s.spec.Bucket, key, bytes.NewReader(buf), stored.Size, "", "", opts)
	if err != nil {
		return Stored{}, fmt.Errorf("uploading to %s/%s: %w", s.spec.Bucket, key, err)
	}
	return s.answered(ctx, stored, info.ChecksumSHA256)
}

// putParts uploads an archive of several parts, one part in memory at a time (first, one
// part's buffer, then a second one when Buffers have it free), each with its SHA-256; the
// store keeps the SHA-256 of the parts' sums as the object's checksum.
func (s *Store) putParts(ctx context.Context, key string, a Archive, first []byte) (stored Stored, err error) {
	core := minio.Core{Client: s.client}
	opts := s.putOptions(a)
	opts.UserMetadata[headerChecksumAlgorithm] = "SHA256"
	id, err := core.NewMultipartUpload(ctx, s.spec.Bucket, key, opts)
	if err != nil {
		return Stored{}, fmt.Errorf("uploading to %s/%s: %w", s.spec.Bucket, key, err)
	}
	defer func() {
		if err != nil {
			// A failed upload is aborted; a store that is down keeps it as an
			// incomplete upload, which is no object.
			_ = core.AbortMultipartUpload(context.WithoutCancel(ctx), s.spec.Bucket, key, id)
		}
	}()
	// Parts go two at a time when a second buffer is free: the store takes them faster
	// ("Figures"). The file is still read in order, once, for its running SHA-256: fed
	// in the same loop, not on a goroutine of its own while the part is sent, which
	// was slower where the agent has one core ("Figures", session 6).
	bufs := make(chan []byte, partsInFlight)
	bufs <- first
	if second, ok := s.buffers.tryGet(int64(s.part)); ok {
		defer s.buffers.put(second) // after every part's sender returned
		bufs <- second
	}
	whole := sha256.New()
	parts := make([]minio.CompletePart, (a.Size+int64(s.part)-1)/int64(s.part))
	sums := make([]byte, 0, len(parts)*sha256.Size)
	g, gctx := errgroup.WithContext(ctx)
	var readErr error
	for i, off := 0, int64(0); off < a.Size && readErr == nil; i++ {
		var buf []byte
		select {
		case buf = <-bufs:
		case <-gctx.Done():
			readErr = gctx.Err()
			continue
		}
		n := min(int64(len(buf)), a.Size-off)
		if readErr = readAt(a.File, buf[:n], off, a.Size); readErr != nil {
			continue
		}
		sum := sha256.Sum256(buf[:n])
		whole.Write(buf[:n])
		sums = append(sums, sum[:]...)
		checksum := base64.StdEncoding.EncodeToString(sum[:])
		g.Go(func() error {
			defer func() { bufs <- buf }()
			part, err := core.PutObjectPart(gctx, s.spec.Bucket, key, id, i+1, bytes.NewReader(buf[:n]), n, minio.PutObjectPartOptions{
				SSE: s.sse, DisableContentSha256: true,
				CustomHeader: map[string][]string{headerChecksumSHA256: {checksum}},
			})
			if err != nil {
				return fmt.Errorf("uploading part %d to %s/%s: %w", i+1, s.spec.Bucket, key, err)
			}
			parts[i] = minio.CompletePart{PartNumber: i + 1, ETag: part.ETag, ChecksumSHA256: checksum}
			return nil
		})
		off += n
	}
	// The parts sent are waited for whatever happened: their buffers are in use.
	if err := errors.Join(g.Wait(), readErr); err != nil {
		return Stored{}, err
	}
	composite := sha256.Sum256(sums)
	stored = Stored{Key: key, SHA256: hex.EncodeToString(whole.Sum(nil)), Size: a.Size,
		Checksum: fmt.Sprintf("%s-%d", base64.StdEncoding.EncodeToString(composite[:]), len(parts))}
	info, err := core.CompleteMultipartUpload(ctx, s.spec.Bucket, key, id, parts, minio.PutObjectOptions{})
	if err != nil {
		return Stored{}, fmt.Errorf("completing the upload to %s/%s: %w", s.spec.Bucket, key, err)
	}
	return s.answered(ctx, stored, info.ChecksumSHA256)
}

// ErrNoChecksums is returned by a store that answers an upload without the SHA-256
// checksum it computed: it predates S3's flexible checksums, and nothing it stores can be
// verified without reading it back.
var ErrNoChecksums = errors.New("the store answered without a SHA-256 checksum (x-amz-checksum-sha256): it does not support S3's flexible checksums, which offload needs to verify what it stores")

// answered checks the checksum that the store answered an upload with against the one
// computed here; an object that does not pass is removed.
func (s *Store) answered(ctx context.Context, stored Stored, checksum string) (Stored, error) {
	if checksum == stored.Checksum {
		return stored, nil
	}
	_ = s.client.RemoveObject(ctx, s.spec.Bucket, stored.Key, minio.RemoveObjectOptions{})
	if checksum == "" {
		return Stored{}, fmt.Errorf("uploading to %s/%s: %w", s.spec.Bucket, stored.Key, ErrNoChecksums)
	}
	return Stored{}, fmt.Errorf("uploading to %s/%s: the store computed the SHA-256 checksum %s, the archive's is %s", s.spec.Bucket, stored.Key, checksum, stored.Checksum)
}

// readAt fills buf from the file at off, and fails when the file ends early (it shrank).
func readAt(f *os.File, buf []byte, off, size int64) error {
	if _, err := f.ReadAt(buf, off); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("the archive ended before %d bytes: it changed, and is not uploaded", size)
		}
		return fmt.Errorf("reading the archive: %w", err)
	}
	return nil
}

// fileState is what changes when a file is written: a write moves its mtime and ctime
// (the kernel stamps each one; ctime cannot be set back), a truncation or an append its
// size.
type fileState struct {
	size         int64
	mtime, ctime syscall.Timespec
}

func (f fileState) String() string {
	return fmt.Sprintf("%d bytes, mtime %d.%09d, ctime %d.%09d", f.size, f.mtime.Sec, f.mtime.Nsec, f.ctime.Sec, f.ctime.Nsec)
}

func fileStateOf(f *os.File) (fileState, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return fileState{}, err
	}
	return fileState{size: st.Size, mtime: st.Mtim, ctime: st.Ctim}, nil
}

// RecordedSHA256 is the SHA-256 of the archive that the object at info.Key records: in
// its metadata (an archive of one part), or in its tag TagSHA256 (one of several parts).
func RecordedSHA256(ctx context.Context, c *minio.Client, bucket string, info minio.ObjectInfo) (string, error) {
	if sum := info.Metadata.Get("X-Amz-Meta-" + MetaSHA256); sum != "" {
		return sum, nil
	}
	t, err := c.GetObjectTagging(ctx, bucket, info.Key, minio.GetObjectTaggingOptions{})
	if err != nil {
		return "", fmt.Errorf("reading the tags of %s/%s: %w", bucket, info.Key, err)
	}
	return t.ToMap()[TagSHA256], nil
}
