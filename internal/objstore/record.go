package objstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/minio/minio-go/v7"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// MetaArchive is the user metadata that records the rest of the Checkpoint's spec.archive
// (RecordOf), so that any agent can publish the archive again, as an orphan, when its
// namespace is deleted after the agent that stored it is gone for good (docs/offload.md,
// "Orphans in the store"). The key holds the namespace, pod, container and UID, MetaFileName
// the file name, the object's size the archive's.
const MetaArchive = "Checkpoint-Archive"

// MetadataLimit is S3's bound on an object's user metadata: the bytes of each name and
// value together. Counted here with the "x-amz-meta-" of each name, to stay clear of it.
const MetadataLimit = 2048

// archiveRecord is what MetaArchive holds, in short JSON names.
type archiveRecord struct {
	Node     string            `json:"n"`
	Dir      string            `json:"d"`
	PodUID   types.UID         `json:"u,omitempty"`
	Time     metav1.Time       `json:"t"`
	Runtime  string            `json:"r,omitempty"`
	Image    string            `json:"i,omitempty"`
	OrphanOf string            `json:"o,omitempty"`
	CopyOf   *cqv1.ArchiveCopy `json:"c,omitempty"`
}

// RecordOf is the MetaArchive value of a Checkpoint's archive, in ASCII (what a header
// carries), or "" when the object's user metadata with it would pass MetadataLimit: such an
// archive is stored without it, as an older agent stored every archive.
func RecordOf(c *cqv1.Checkpoint) string {
	a := c.Spec.Archive
	if a == nil {
		return ""
	}
	data, err := json.Marshal(archiveRecord{Node: a.NodeName, Dir: a.Directory, PodUID: a.PodUID, Time: a.CheckpointTime,
		Runtime: a.Runtime, Image: a.Image, OrphanOf: a.OrphanOf, CopyOf: a.CopyOf})
	if err != nil {
		return ""
	}
	record := asciiJSON(data)
	// Every name and value the object's metadata holds: UID, namespace, file name, the
	// SHA-256 (64 hex digits; Rebind writes it for an archive uploaded in parts too).
	size := 0
	for name, value := range map[string]string{MetaUID: string(c.UID), MetaNamespace: c.PodNamespace(),
		MetaFileName: a.FileName, MetaSHA256: strings.Repeat("0", 64), MetaArchive: record} {
		size += len("x-amz-meta-") + len(name) + len(value)
	}
	if size > MetadataLimit {
		return ""
	}
	return record
}

// asciiJSON escapes each character past ASCII in JSON data as \uXXXX: outside strings
// JSON has none, and escaped it means the same, so the value passes any header unchanged.
func asciiJSON(data []byte) string {
	var b strings.Builder
	for _, r := range string(data) {
		switch {
		case r < utf8.RuneSelf:
			b.WriteRune(r)
		case r > 0xffff:
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

// Described is what an object's HEAD says of the archive it holds.
type Described struct {
	Key string
	// Owner is the UID of the Checkpoint the object belongs to (MetaUID): the one in its
	// key, or the orphan's it was given to (Rebind).
	Owner types.UID
	// Archive is the Checkpoint's spec.archive as the object records it, in namespace
	// ArchiveOfKey's; nil when the object holds no record (an older agent's, or one too
	// long for MetadataLimit) or one that does not parse.
	Archive *cqv1.ArchiveSource
	// SHA256 is the SHA-256 the object records; Size and Written are the store's.
	SHA256  string
	Size    int64
	Written time.Time
}

// Describe reads the object at key with a HEAD (and its tag, for the SHA-256 of an archive
// uploaded in parts).
func (s *Store) Describe(ctx context.Context, key string) (Described, error) {
	info, err := s.client.StatObject(ctx, s.spec.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return Described{}, fmt.Errorf("reading %s/%s: %w", s.spec.Bucket, key, err)
	}
	d := Described{Key: key, Owner: types.UID(info.Metadata.Get("X-Amz-Meta-" + MetaUID)), Size: info.Size, Written: info.LastModified}
	if d.SHA256, err = RecordedSHA256(ctx, s.client, s.spec.Bucket, info); err != nil {
		return Described{}, err
	}
	d.Archive = archiveOf(key, s.spec.Prefix, info.Metadata.Get("X-Amz-Meta-"+MetaFileName), info.Size, info.Metadata.Get("X-Amz-Meta-"+MetaArchive))
	return d, nil
}

// archiveOf is the spec.archive that an object of key records, nil when it records none.
func archiveOf(key, prefix, fileName string, size int64, record string) *cqv1.ArchiveSource {
	if record == "" || fileName == "" {
		return nil
	}
	var r archiveRecord
	if err := json.Unmarshal([]byte(record), &r); err != nil || r.Node == "" || r.Dir == "" {
		return nil
	}
	k, ok := parseKey(prefix, key)
	if !ok {
		return nil
	}
	return &cqv1.ArchiveSource{NodeName: r.Node, Directory: r.Dir, FileName: fileName, PodName: k.pod, PodUID: r.PodUID,
		ContainerName: k.container, OrphanOf: r.OrphanOf, CopyOf: r.CopyOf, SizeBytes: size, CheckpointTime: r.Time,
		Runtime: r.Runtime, Image: r.Image}
}
