// Package archive writes checkpoint archives laid out as CRI-O and containerd write them, and broken and hostile ones, for tests and benchmarks.
package archive

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
)

// Runtime is the runtime, and for containerd the generation, whose layout an archive has.
// docs/node-agent.md ("What the runtimes write") gives the sources each layout follows.
type Runtime string

const (
	// CRIO is CRI-O's layout (1.36): stats-dump, dump.log, checkpoint/, config.dump,
	// spec.dump (both indented JSON), bind.mounts, rootfs-diff.tar, deleted.files when the
	// container deleted files, and the container log under the entry name
	// io.kubernetes.cri-o.LogPath, in that order. The image is an ID in
	// io.kubernetes.cri-o.Image and rootfsImage, its name in io.kubernetes.cri-o.ImageName
	// and rootfsImageName.
	CRIO Runtime = "cri-o"
	// Containerd is containerd 2.1 and later: PAX headers, entries in name order,
	// checkpoint/, config.dump, container.log, dump.log, rootfs-diff.tar, spec.dump,
	// stats-dump, status, status.dump.
	Containerd Runtime = "containerd"
	// Containerd20 is containerd 2.0: checkpoint/, config.dump, rootfs-diff.tar, spec.dump.
	Containerd20 Runtime = "containerd-2.0"
)

// Runtimes are every layout, for tests that must hold on each.
var Runtimes = []Runtime{CRIO, Containerd20, Containerd}

// RuntimeName is the name the reader reports for the runtime of a layout.
func (r Runtime) RuntimeName() string {
	if r == CRIO {
		return "cri-o"
	}
	return "containerd"
}

// Broken selects a damaged variant of an archive.
type Broken string

const (
	// Truncated cuts the archive inside its last entry's data.
	Truncated Broken = "truncated"
	// NotTar writes bytes that are not a tar archive under an archive's name.
	NotTar Broken = "not-a-tar"
	// NoIdentity writes a complete archive whose spec.dump carries no runtime's keys.
	NoIdentity Broken = "no-identity"
	// HugeSpec writes a spec.dump of HugeSpecSize bytes, over any sane metadata cap.
	HugeSpec Broken = "huge-spec"
	// Symlink writes the archive outside the directory and a symlink to it under the archive's name.
	Symlink Broken = "symlink"
	// Directory makes a directory with an archive's name.
	Directory Broken = "directory"
)

// HugeSpecSize is the size of the spec.dump of a HugeSpec archive.
const HugeSpecSize = 8 << 20

// RuntimeDelay is how long after the kubelet's clock (the file name) the runtime reads
// its own (config.dump's checkpointedTime): a fraction of a second, with nanoseconds.
const RuntimeDelay = 123456789 * time.Nanosecond

// Archive describes one checkpoint archive. Make one with New and its setters.
type Archive struct {
	Namespace, Pod, Container string
	PodUID                    string
	Runtime                   Runtime
	// Image is the image the pod asked for (the container's image: field).
	Image string
	// ResolvedImage is the name the runtime found for the image: containerd 2.1+ puts
	// it in config.dump, CRI-O in io.kubernetes.cri-o.ImageName and rootfsImageName
	// (CRI-O's "some name" of the image, the pod's image fully qualified when the image
	// has one tag). Empty means the image has no name.
	ResolvedImage string
	// Time is the kubelet's time, written into the file name; config.dump gets
	// Time+RuntimeDelay.
	Time time.Time
	// Zone is the node's local time zone, in which the kubelet and the runtimes write times.
	Zone *time.Location
	// NameTime, when set, is the time written into the file name instead of Time.
	NameTime *time.Time
	// Size is the archive's total size in bytes, rounded up to whole 512-byte tar blocks.
	Size int64
	// RootfsDiff says the container deleted files from its file system: CRI-O then adds
	// deleted.files (both runtimes write rootfs-diff.tar always, CRI-O because it adds
	// /etc/mtab to every container).
	RootfsDiff bool
	// PodAnnotations are what the pod's author wrote in metadata.annotations. CRI-O
	// copies them all into spec.dump; containerd here passes them all through, as
	// with pod_annotations = ["*"], the most a node can let through.
	PodAnnotations map[string]string
	// Broken, when set, damages the archive.
	Broken Broken
	// ModTime, when set, becomes the file's modification time.
	ModTime time.Time
	// FileNameOverride, when set, is the file name instead of the kubelet's.
	FileNameOverride string

	// oversizedAt is the offset of the header an OversizedEntry archive lies in.
	oversizedAt int64
}

// New describes a 64 KiB CRI-O archive of the container, taken now (to the second, as the
// kubelet's file name has it) on a node whose clock is in UTC.
func New(namespace, pod, container string) *Archive {
	return &Archive{
		Namespace: namespace,
		Pod:       pod,
		Container: container,
		PodUID:    uuid.NewSHA1(uuid.NameSpaceOID, []byte(namespace+"/"+pod)).String(),
		Runtime:   CRIO,
		// A short name, as most pods write it, which the runtimes resolve.
		Image:         container + ":1.0",
		ResolvedImage: "docker.io/library/" + container + ":1.0",
		Time:          time.Now().UTC().Truncate(time.Second),
		Zone:          time.UTC,
		Size:          64 << 10,
	}
}

// WithRuntime sets the runtime's layout.
func (a *Archive) WithRuntime(r Runtime) *Archive { a.Runtime = r; return a }

// WithUID sets the pod UID.
func (a *Archive) WithUID(uid string) *Archive { a.PodUID = uid; return a }

// At sets the checkpoint time.
func (a *Archive) At(t time.Time) *Archive { a.Time = t; return a }

// InZone sets the node's local time zone.
func (a *Archive) InZone(loc *time.Location) *Archive { a.Zone = loc; return a }

// NamedAt writes t, with its zone offset, into the file name instead of the checkpoint time.
func (a *Archive) NamedAt(t time.Time) *Archive { a.NameTime = &t; return a }

// WithSize sets the archive's total size in bytes.
func (a *Archive) WithSize(n int64) *Archive { a.Size = n; return a }

// WithRootfsDiff says the container deleted files from its file system.
func (a *Archive) WithRootfsDiff() *Archive { a.RootfsDiff = true; return a }

// WithImage sets the image the pod asked for and the name the runtime resolved it to.
func (a *Archive) WithImage(requested, resolved string) *Archive {
	a.Image, a.ResolvedImage = requested, resolved
	return a
}

// ReportedImage is the image the reader reports for the archive: on containerd what the
// pod asked for, on CRI-O the name CRI-O found for the image, or its ID when it has none
// (docs/node-agent.md, "The image").
func (a *Archive) ReportedImage() string {
	switch {
	case a.Runtime != CRIO:
		return a.Image
	case a.ResolvedImage != "":
		return a.ResolvedImage
	}
	return a.ImageID()
}

// WithPodAnnotations sets the annotations the pod's author wrote.
func (a *Archive) WithPodAnnotations(annotations map[string]string) *Archive {
	a.PodAnnotations = annotations
	return a
}

// Damaged makes the archive a broken variant.
func (a *Archive) Damaged(b Broken) *Archive { a.Broken = b; return a }

// ModifiedAt sets the file's modification time.
func (a *Archive) ModifiedAt(t time.Time) *Archive { a.ModTime = t; return a }

// Named writes the archive under name instead of the kubelet's name for it.
func (a *Archive) Named(name string) *Archive { a.FileNameOverride = name; return a }

// FileName is the kubelet's name for the archive:
// checkpoint-<pod>_<namespace>-<container>-<RFC3339 time in the node's zone>.tar.
func (a *Archive) FileName() string {
	if a.FileNameOverride != "" {
		return a.FileNameOverride
	}
	t := a.Time.In(a.zone())
	if a.NameTime != nil {
		t = *a.NameTime
	}
	return fmt.Sprintf("checkpoint-%s_%s-%s-%s.tar", a.Pod, a.Namespace, a.Container, t.Format(time.RFC3339))
}

// RuntimeTime is config.dump's checkpointedTime: the runtime's clock, in the node's zone.
func (a *Archive) RuntimeTime() time.Time { return a.Time.Add(RuntimeDelay).In(a.zone()) }

func (a *Archive) zone() *time.Location {
	if a.Zone == nil {
		return time.UTC
	}
	return a.Zone
}

// Write writes the archive into dir and returns its path.
func (a *Archive) Write(dir string) (string, error) {
	path := filepath.Join(dir, a.FileName())
	switch a.Broken {
	case Directory:
		return path, os.Mkdir(path, 0o700)
	case NotTar:
		return path, writeFile(path, a.ModTime, func(w io.Writer) error {
			_, err := io.WriteString(w, "this is not a checkpoint archive\n")
			return err
		})
	case Symlink:
		outside, err := os.MkdirTemp("", "checkpoint-outside-")
		if err != nil {
			return "", err
		}
		clean := *a
		clean.Broken = ""
		target, err := clean.Write(outside)
		if err != nil {
			return "", err
		}
		return path, os.Symlink(target, path)
	}
	var cut int64
	if err := writeFile(path, a.ModTime, func(w io.Writer) error {
		var err error
		cut, err = a.writeTar(w)
		return err
	}); err != nil {
		return "", err
	}
	switch a.Broken {
	case Truncated:
		return path, os.Truncate(path, cut)
	case OversizedEntry:
		return path, declareHugeSize(path, a.oversizedAt)
	}
	return path, nil
}

// MustWrite is Write for tests: it panics on an error of the filesystem.
func (a *Archive) MustWrite(dir string) string {
	path, err := a.Write(dir)
	if err != nil {
		panic(err)
	}
	return path
}

func writeFile(path string, mtime time.Time, write func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	buf := bufio.NewWriterSize(f, 1<<20)
	if err := write(buf); err != nil {
		_ = f.Close()
		return err
	}
	if err := buf.Flush(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if !mtime.IsZero() {
		return os.Chtimes(path, mtime, mtime)
	}
	return nil
}

// hash is a small stable hash for made-up identifiers.
func hash(s string) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
