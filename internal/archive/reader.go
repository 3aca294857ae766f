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
	"syscall"
	"time"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
)

// Default limits: spec.dump and config.dump are a few KiB; anything near a MiB is not
// metadata a runtime wrote, and reading it would let one file cost the agent memory.
const (
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
	res, err := ReadFrom(f, path.Base(file), info.ModTime(), lim)
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
func ReadFrom(r io.ReadSeeker, name string, modTime time.Time, lim Limits) (Result, error) {
	lim = lim.withDefaults()
	cr := &countingReader{r: r}
	tr := tar.NewReader(cr)
	var (
		config  *metadata.ContainerConfig
		spec    *metadata.Spec
		entries int
		failure *Error
	)
	fail := func(reason Reason, err error) {
		if failure == nil {
			failure = &Error{File: name, Reason: reason, Err: err}
		}
	}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			if entries == 0 {
				fail(ReasonNotTar, errors.New("is empty or holds no tar entries; a kubelet checkpoint is a tar archive"))
			}
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
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		switch entryName := path.Clean(strings.TrimPrefix(hdr.Name, "./")); entryName {
		case metadata.ConfigDumpFile:
			config = &metadata.ContainerConfig{}
			if err := decodeEntry(tr, hdr, lim.MaxMetadataSize, config); err != nil {
				fail(err.Reason, err.Err)
			}
		case metadata.SpecDumpFile:
			spec = &metadata.Spec{}
			if err := decodeEntry(tr, hdr, lim.MaxMetadataSize, spec); err != nil {
				fail(err.Reason, err.Err)
			}
		}
		// Every other entry's data is skipped by tar.Reader, which seeks because cr is an io.Seeker.
	}

	id := identityFrom(spec, config)
	if id.TimeSource == "" {
		if t, ok := TimeFromName(name); ok {
			id.CheckpointTime, id.TimeSource = t.UTC(), TimeFromFileName
		} else {
			id.CheckpointTime, id.TimeSource = modTime.UTC(), TimeFromModTime
		}
	}
	res := Result{Identity: id, BytesRead: cr.n}
	if failure == nil && spec == nil {
		fail(ReasonNoIdentity, fmt.Errorf("has no %s, so its pod and namespace are unknown", metadata.SpecDumpFile))
	}
	if failure == nil && !id.Complete() {
		fail(ReasonNoIdentity, fmt.Errorf("%s names no namespace, pod and container in the annotations of CRI-O, containerd or checkpointctl", metadata.SpecDumpFile))
	}
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
	data, err := io.ReadAll(io.LimitReader(tr, limit+1))
	if err != nil {
		return &Error{Reason: ReasonTruncated, Err: fmt.Errorf("reading %s: %v; the file is incomplete or damaged", hdr.Name, err)}
	}
	if err := json.Unmarshal(data, into); err != nil {
		return &Error{Reason: ReasonBadMetadata, Err: fmt.Errorf("%s is not valid JSON: %v", hdr.Name, err)}
	}
	return nil
}

// countingReader counts the bytes read through it and lets tar.Reader seek past data.
type countingReader struct {
	r io.ReadSeeker
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) Seek(offset int64, whence int) (int64, error) {
	return c.r.Seek(offset, whence)
}
