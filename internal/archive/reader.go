package archive

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
)

// Default limits: spec.dump and config.dump are a few KiB; anything near a MiB is not
// metadata a runtime wrote, and reading it would let one file cost the agent memory.
const (
	// readBufferSize is one page: the kernel reads no less from the page cache or the disk.
	readBufferSize         = 4096
	DefaultMaxMetadataSize = 1 << 20
	DefaultMaxEntries      = 100000
)

// Limits cap what Read takes from one archive.
type Limits struct {
	// MaxMetadataSize is the largest config.dump or spec.dump that is read.
	MaxMetadataSize int64
	// MaxEntries is the most tar headers that are walked.
	MaxEntries int
}

func (l Limits) withDefaults() Limits {
	if l.MaxMetadataSize <= 0 {
		l.MaxMetadataSize = DefaultMaxMetadataSize
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	return l
}

// Reason classifies why an archive could not be read.
type Reason string

// Reasons, in the words reported on conditions, events and metrics.
const (
	ReasonNotRegular       Reason = "NotRegularFile"
	ReasonNotTar           Reason = "NotTar"
	ReasonTruncated        Reason = "Truncated"
	ReasonNoIdentity       Reason = "NoIdentity"
	ReasonMetadataTooLarge Reason = "MetadataTooLarge"
	ReasonBadMetadata      Reason = "BadMetadata"
	ReasonIO               Reason = "IOError"
	// ReasonUnexpectedEntry is an entry no runtime writes: a link, a device, a name
	// that climbs out of the archive or is absolute, a name that is not UTF-8.
	ReasonUnexpectedEntry Reason = "UnexpectedEntry"
	// ReasonIdentityMismatch is an identity that the file name or config.dump
	// contradicts, or that two copies of the metadata disagree on: it is charged to no
	// namespace.
	ReasonIdentityMismatch Reason = "IdentityMismatch"
)

// Error is an archive that could not be read, with the reason and a hint for the operator.
type Error struct {
	File   string
	Reason Reason
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("archive %s: %s: %v", e.File, e.Reason, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of an *Error, or ReasonIO for any other error.
func ReasonOf(err error) Reason {
	var ae *Error
	if errors.As(err, &ae) {
		return ae.Reason
	}
	return ReasonIO
}

// Result is what Read learned about one archive.
type Result struct {
	Identity Identity
	// Ended is true when the archive ends with tar's end-of-archive marker (two zero
	// blocks where the next header would be), which the runtimes' tar writers write last:
	// an archive without it may still be being written (docs/node-agent.md, "Settling").
	Ended bool
	// BytesRead counts the bytes read from the file: tar headers and the two metadata files.
	BytesRead int64
}

// Read reads the identity of the archive at path. It never follows a symlink, reads only
// tar headers, config.dump and spec.dump (seeking past every other entry's data), and
// returns an *Error for an archive that is not a readable checkpoint. When the archive
// names a namespace but is otherwise unusable, the partial identity is returned with the error.
func Read(file string, lim Limits) (Result, error) {
	// O_NOFOLLOW refuses a symlink; O_NONBLOCK keeps a FIFO with an archive's name from blocking.
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return Result{}, &Error{File: file, Reason: ReasonNotRegular, Err: errors.New("is a symlink; symlinks are never followed, move the archive itself into the directory")}
		}
		return Result{}, &Error{File: file, Reason: ReasonIO, Err: err}
	}
	defer func() { _ = f.Close() }()
	info, err := f.Stat()
	if err != nil {
		return Result{}, &Error{File: file, Reason: ReasonIO, Err: err}
	}
	if !info.Mode().IsRegular() {
		return Result{}, &Error{File: file, Reason: ReasonNotRegular, Err: fmt.Errorf("is a %s, not a regular file", kindOf(info.Mode()))}
	}
	res, err := ReadFrom(f, info.Size(), path.Base(file), info.ModTime(), lim)
	var ae *Error
	if errors.As(err, &ae) {
		ae.File = file
	}
	return res, err
}

func kindOf(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&os.ModeSymlink != 0:
		return "symlink"
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeSocket != 0:
		return "socket"
	case m&os.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// ReadFrom reads an archive's identity from r. name is the archive's file name and
// modTime its modification time, the fallbacks for the checkpoint time.
func ReadFrom(r io.ReaderAt, size int64, name string, modTime time.Time, lim Limits) (Result, error) {
	lim = lim.withDefaults()
	cr := newBlockReader(r, size)
	defer cr.release()
	tr := tar.NewReader(cr)
	var (
		config  *metadata.ContainerConfig
		spec    *metadata.Spec
		entries int
		failure *Error
		// duplicate names a metadata file the archive holds twice: which copy the
		// runtime wrote cannot be told, so neither is trusted.
		duplicate string
	)
	fail := func(reason Reason, err error) {
		if failure == nil {
			failure = &Error{File: name, Reason: reason, Err: err}
		}
	}
	ended := false
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			if entries == 0 {
				fail(ReasonNotTar, errors.New("is empty or holds no tar entries; a kubelet checkpoint is a tar archive"))
			}
			// tar.Reader reports io.EOF both for the marker and for a file that stops at an
			// entry's end; only in the second case did it read up to the end of the file.
			ended = !cr.atEnd
			break
		}
		if err != nil {
			if entries == 0 {
				fail(ReasonNotTar, fmt.Errorf("is not a tar archive (%v)", err))
			} else {
				fail(ReasonTruncated, fmt.Errorf("ends inside entry %d (%v); the file is incomplete or damaged", entries, err))
			}
			break
		}
		entries++
		if entries > lim.MaxEntries {
			fail(ReasonMetadataTooLarge, fmt.Errorf("holds more than %d entries", lim.MaxEntries))
			break
		}
		if err := unexpected(hdr); err != nil {
			fail(ReasonUnexpectedEntry, err)
			continue
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		// Only the exact names: an extractor would put "checkpoint/../spec.dump" in
		// place of spec.dump, but unexpected has refused that name already.
		switch entryName := strings.TrimPrefix(hdr.Name, "./"); entryName {
		case metadata.ConfigDumpFile:
			if config != nil {
				duplicate = entryName
			}
			config = &metadata.ContainerConfig{}
			if err := decodeEntry(tr, hdr, lim.MaxMetadataSize, config); err != nil {
				fail(err.Reason, err.Err)
			}
		case metadata.SpecDumpFile:
			if spec != nil {
				duplicate = entryName
			}
			spec = &metadata.Spec{}
			if err := decodeEntry(tr, hdr, lim.MaxMetadataSize, spec); err != nil {
				fail(err.Reason, err.Err)
			}
		}
		// Every other entry's data is skipped by tar.Reader, which seeks because cr is an
		// io.Seeker. The walk goes on to the end, past the metadata, because only the end
		// of the archive tells a complete archive from a truncated one; it costs a header
		// read per remaining entry.
	}

	id := identityFrom(spec, config)
	if id.TimeSource == "" {
		if t, ok := TimeFromName(name); ok {
			id.CheckpointTime, id.TimeSource = t.UTC(), TimeFromFileName
		} else {
			id.CheckpointTime, id.TimeSource = modTime.UTC(), TimeFromModTime
		}
	}
	// A namespace is returned only for an identity that is whole, single and witnessed:
	// the agent publishes into that namespace even when the rest of the archive is damaged.
	var mismatch error
	switch {
	case duplicate != "":
		mismatch = fmt.Errorf("holds %s more than once; which copy the runtime wrote cannot be told", duplicate)
	case id.Complete():
		mismatch = witness(id, name, config)
	}
	if mismatch != nil {
		// The mismatch decides where the archive is charged (nowhere), so it is the reason shown.
		failure = &Error{File: name, Reason: ReasonIdentityMismatch, Err: mismatch}
	}
	if failure == nil && spec == nil {
		fail(ReasonNoIdentity, fmt.Errorf("has no %s, so its pod and namespace are unknown", metadata.SpecDumpFile))
	}
	if failure == nil && !id.Complete() {
		fail(ReasonNoIdentity, fmt.Errorf("%s names no namespace, pod and container in the keys of CRI-O (io.container.manager: cri-o) or containerd (io.kubernetes.cri.*)", metadata.SpecDumpFile))
	}
	if mismatch != nil || !id.Complete() {
		id.Namespace, id.Pod, id.PodUID, id.Container = "", "", "", ""
	}
	res := Result{Identity: id, Ended: ended, BytesRead: cr.n}
	if failure != nil {
		failure.File = name
		return res, failure
	}
	return res, nil
}

func decodeEntry(tr *tar.Reader, hdr *tar.Header, limit int64, into any) *Error {
	if hdr.Size > limit {
		return &Error{Reason: ReasonMetadataTooLarge, Err: fmt.Errorf("%s is %d bytes, over the %d-byte cap for metadata", hdr.Name, hdr.Size, limit)}
	}
	// The header gives the size: one buffer of it, where reading to the end grew one
	// buffer after another (a twelfth of what the agent allocated per archive).
	data := make([]byte, hdr.Size)
	if _, err := io.ReadFull(tr, data); err != nil {
		return &Error{Reason: ReasonTruncated, Err: fmt.Errorf("reading %s: %v; the file is incomplete or damaged", hdr.Name, err)}
	}
	// The runtimes write JSON with Go's encoder, which emits only UTF-8; the decoder
	// would quietly replace bad bytes, so they are refused here.
	if !utf8.Valid(data) {
		return &Error{Reason: ReasonBadMetadata, Err: fmt.Errorf("%s is not UTF-8 text", hdr.Name)}
	}
	if err := json.Unmarshal(data, into); err != nil {
		return &Error{Reason: ReasonBadMetadata, Err: fmt.Errorf("%s is not valid JSON: %v", hdr.Name, err)}
	}
	return nil
}

// unexpected says what is wrong with an entry that no runtime writes. The runtimes
// archive a directory of regular files (CRIU's images, the metadata, the rootfs diff as a
// tar of its own) under relative names; anything else was put there by someone else.
// Nothing is extracted, so such an entry is harmless to the agent, but it is reported.
func unexpected(hdr *tar.Header) error {
	name := hdr.Name
	switch {
	case !utf8.ValidString(name):
		return fmt.Errorf("holds an entry whose name is not UTF-8 (%q)", name)
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("holds an entry with an absolute name, %q", name)
	case climbs(name):
		return fmt.Errorf("holds an entry whose name climbs out of the archive, %q", name)
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeDir:
		return nil
	case tar.TypeLink:
		return fmt.Errorf("holds a hard link, %q to %q", name, hdr.Linkname)
	case tar.TypeSymlink:
		return fmt.Errorf("holds a symlink, %q to %q", name, hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock:
		return fmt.Errorf("holds a device entry, %q (%d, %d)", name, hdr.Devmajor, hdr.Devminor)
	}
	return fmt.Errorf("holds an entry of tar type %q, %q", string(hdr.Typeflag), name)
}

// climbs says whether a path has a ".." element.
func climbs(name string) bool {
	for elem := range strings.SplitSeq(name, "/") {
		if elem == ".." {
			return true
		}
	}
	return false
}

// blockReader reads a file through a small buffer with pread and makes seeking free: the
// tar reader skips an entry's data with Seek, which only moves a position here, so an
// archive costs a handful of system calls whatever its size. n counts the bytes read
// from the file.
type blockReader struct {
	f    io.ReaderAt
	size int64
	pos  int64
	buf  []byte
	// start is the file offset of buf[0]; buf holds valid bytes up to len(buf).
	start int64
	n     int64
	// atEnd is set once a read found nothing more in the file.
	atEnd bool
}

// buffers are reused across archives: reading thousands in a row would otherwise
// allocate (and zero) a page per archive for the garbage collector to reclaim.
var buffers = sync.Pool{New: func() any { b := make([]byte, 0, readBufferSize); return &b }}

func newBlockReader(f io.ReaderAt, size int64) *blockReader {
	return &blockReader{f: f, size: size, buf: (*buffers.Get().(*[]byte))[:0]}
}

func (b *blockReader) release() {
	buf := b.buf[:0]
	b.buf = nil
	buffers.Put(&buf)
}

func (b *blockReader) Read(p []byte) (int, error) {
	if b.pos < b.start || b.pos >= b.start+int64(len(b.buf)) {
		if b.pos >= b.size {
			b.atEnd = true
			return 0, io.EOF
		}
		n, err := b.f.ReadAt(b.buf[:cap(b.buf)], b.pos)
		b.n += int64(n)
		b.start, b.buf = b.pos, b.buf[:n]
		if n == 0 {
			if err == nil {
				err = io.EOF
			}
			b.atEnd = b.atEnd || err == io.EOF
			return 0, err
		}
	}
	n := copy(p, b.buf[b.pos-b.start:])
	b.pos += int64(n)
	return n, nil
}

func (b *blockReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += b.pos
	case io.SeekEnd:
		offset += b.size
	default:
		return b.pos, fmt.Errorf("seek: invalid whence %d", whence)
	}
	if offset < 0 {
		return b.pos, errors.New("seek: negative position")
	}
	b.pos = offset
	return offset, nil
}
