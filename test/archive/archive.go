// Package archive writes realistic kubelet checkpoint archives, and broken ones, for tests and benchmarks.
package archive

import (
	"archive/tar"
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
	"github.com/google/uuid"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Runtime is the style of identity annotations an archive carries.
type Runtime string

const (
	// CRIO writes io.kubernetes.cri-o.Labels and io.kubernetes.pod.* annotations.
	CRIO Runtime = "cri-o"
	// Containerd writes io.kubernetes.cri.sandbox-* annotations.
	Containerd Runtime = "containerd"
	// CRIU writes only checkpointctl's org.criu.checkpoint.* annotations, as archives
	// built by checkpointctl-aware tools do.
	CRIU Runtime = "criu"
)

// Broken selects a damaged variant of an archive.
type Broken string

const (
	// Truncated cuts the archive in the middle of its metadata.
	Truncated Broken = "truncated"
	// NotTar writes bytes that are not a tar archive under an archive's name.
	NotTar Broken = "not-a-tar"
	// NoIdentity writes a complete archive whose spec.dump names no pod or namespace.
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

// Archive describes one checkpoint archive. Make one with New and its setters.
type Archive struct {
	Namespace, Pod, Container string
	PodUID                    string
	Runtime                   Runtime
	Image                     string
	// Time is the checkpoint time, written into config.dump and the file name.
	Time time.Time
	// NameTime, when set, is the time written into the file name instead of Time
	// (a kubelet on a node with a local time zone writes an offset).
	NameTime *time.Time
	// Size is the archive's total size in bytes, rounded up to whole 512-byte tar blocks.
	Size int64
	// RootfsDiff adds a rootfs-diff.tar entry.
	RootfsDiff bool
	// Broken, when set, damages the archive.
	Broken Broken
	// ModTime, when set, becomes the file's modification time.
	ModTime time.Time
}

// New describes a 64 KiB CRI-O archive of the container, taken now.
func New(namespace, pod, container string) *Archive {
	return &Archive{
		Namespace: namespace,
		Pod:       pod,
		Container: container,
		PodUID:    uuid.NewSHA1(uuid.NameSpaceOID, []byte(namespace+"/"+pod)).String(),
		Runtime:   CRIO,
		Image:     "registry.example/" + container + ":1.0",
		Time:      time.Now().UTC().Truncate(time.Second),
		Size:      64 << 10,
	}
}

// WithRuntime sets the annotation style.
func (a *Archive) WithRuntime(r Runtime) *Archive { a.Runtime = r; return a }

// WithUID sets the pod UID.
func (a *Archive) WithUID(uid string) *Archive { a.PodUID = uid; return a }

// At sets the checkpoint time.
func (a *Archive) At(t time.Time) *Archive { a.Time = t; return a }

// NamedAt writes t, with its zone offset, into the file name instead of the checkpoint time.
func (a *Archive) NamedAt(t time.Time) *Archive { a.NameTime = &t; return a }

// WithSize sets the archive's total size in bytes.
func (a *Archive) WithSize(n int64) *Archive { a.Size = n; return a }

// WithRootfsDiff adds a rootfs-diff.tar entry.
func (a *Archive) WithRootfsDiff() *Archive { a.RootfsDiff = true; return a }

// WithImage sets the container image.
func (a *Archive) WithImage(image string) *Archive { a.Image = image; return a }

// Damaged makes the archive a broken variant.
func (a *Archive) Damaged(b Broken) *Archive { a.Broken = b; return a }

// ModifiedAt sets the file's modification time.
func (a *Archive) ModifiedAt(t time.Time) *Archive { a.ModTime = t; return a }

// FileName is the kubelet's name for the archive:
// checkpoint-<pod>_<namespace>-<container>-<RFC3339 time>.tar.
func (a *Archive) FileName() string {
	t := a.Time
	if a.NameTime != nil {
		t = *a.NameTime
	}
	return fmt.Sprintf("checkpoint-%s_%s-%s-%s.tar", a.Pod, a.Namespace, a.Container, t.Format(time.RFC3339))
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
	if err := writeFile(path, a.ModTime, a.writeTar); err != nil {
		return "", err
	}
	if a.Broken == Truncated {
		info, err := os.Stat(path)
		if err != nil {
			return "", err
		}
		// The metadata sits after the memory pages, as in CRI-O's archives: cutting
		// the file ends it before the metadata is complete.
		return path, os.Truncate(path, info.Size()-1024-700)
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

// entry is one file of the archive, with its data or a length of filler.
type entry struct {
	name   string
	data   []byte
	filler int64
}

func (a *Archive) writeTar(w io.Writer) error {
	config, spec, err := a.metadata()
	if err != nil {
		return err
	}
	images := criuImages(a.Time)
	var tail []entry
	if a.RootfsDiff {
		tail = append(tail, entry{name: metadata.RootFsDiffTar, filler: 10 << 10})
	}
	head := append(images, entry{name: "checkpoint/pages-1.img"})
	meta := []entry{
		{name: metadata.ConfigDumpFile, data: config},
		{name: metadata.SpecDumpFile, data: spec},
		{name: "stats-dump", data: []byte(`{"freezing_time":1200,"frozen_time":45000,"memdump_time":30000,"memwrite_time":9000,"pages_scanned":4096,"pages_written":2048}`)},
	}
	if a.Runtime == Containerd {
		meta = append(meta, entry{name: metadata.StatusFile, data: []byte(`{"CreatedAt":1,"StartedAt":2,"Pid":4242}`)})
	}
	// CRI-O puts the checkpoint directory first and the metadata after it; containerd
	// writes entries in name order. Either way a reader must skip the memory pages.
	entries := append(append(head, meta...), tail...)

	// The memory pages take whatever the requested size leaves.
	used := int64(1024 + 512) // end-of-archive blocks and the checkpoint/ directory header
	for _, e := range entries {
		used += 512 + blocks(int64(len(e.data))+e.filler)
	}
	pages := entries[len(images)]
	if a.Size > used {
		pages.filler = (a.Size - used) / 512 * 512
		if rem := a.Size - used - pages.filler; rem > 0 {
			pages.filler += 512
		}
	}
	entries[len(images)] = pages

	tw := tar.NewWriter(w)
	mod := a.Time
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: metadata.CheckpointDirectory + "/", Mode: 0o700, ModTime: mod}); err != nil {
		return err
	}
	for _, e := range entries {
		size := int64(len(e.data)) + e.filler
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: 0o600, Size: size, ModTime: mod}); err != nil {
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
			return err
		}
		if err := writeFiller(tw, e.filler); err != nil {
			return err
		}
	}
	return tw.Close()
}

func blocks(n int64) int64 { return (n + 511) / 512 * 512 }

var zeros = make([]byte, 1<<20)

// writeFiller writes n bytes that look like memory pages: mostly zeros with some pattern.
func writeFiller(w io.Writer, n int64) error {
	for n > 0 {
		chunk := min(n, int64(len(zeros)))
		if _, err := w.Write(zeros[:chunk]); err != nil {
			return err
		}
		n -= chunk
	}
	return nil
}

// criuImages are the small CRIU image files of a checkpoint, each starting with a CRIU-like magic.
func criuImages(t time.Time) []entry {
	names := []string{"inventory.img", "core-1.img", "mm-1.img", "pagemap-1.img", "files.img", "fs-1.img", "ids-1.img", "pstree.img", "tty-info.img"}
	out := make([]entry, 0, len(names))
	for i, n := range names {
		data := []byte{0x54, 0x56, 0x41, 0x58, byte(i), 0, 0, 0}
		data = append(data, []byte(fmt.Sprintf("criu image %s taken %d", n, t.Unix()))...)
		out = append(out, entry{name: metadata.CheckpointDirectory + "/" + n, data: data})
	}
	return out
}

// metadata returns config.dump and spec.dump as the runtime would write them.
func (a *Archive) metadata() (config, spec []byte, err error) {
	containerID := fmt.Sprintf("%016x%016x%016x%016x", hash(a.Container), hash(a.Pod), hash(a.Namespace), a.Time.UnixNano())
	cfg := metadata.ContainerConfig{
		ID:              containerID,
		Name:            fmt.Sprintf("k8s_%s_%s_%s_%s_0", a.Container, a.Pod, a.Namespace, a.PodUID),
		RootfsImage:     a.Image,
		RootfsImageRef:  fmt.Sprintf("sha256:%064x", hash(a.Image)),
		RootfsImageName: a.Image,
		OCIRuntime:      "runc",
		CreatedTime:     a.Time.Add(-time.Hour),
		CheckpointedAt:  a.Time,
	}
	if a.Runtime == CRIO {
		cfg.OCIRuntime = "crun"
	}
	s := &specs.Spec{
		Version:  specs.Version,
		Hostname: a.Pod,
		Process: &specs.Process{
			User: specs.User{UID: 999, GID: 999},
			Args: []string{"/usr/local/bin/" + a.Container},
			Env:  []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=" + a.Pod},
			Cwd:  "/data",
		},
		Root: &specs.Root{Path: "/var/lib/containers/storage/overlay/" + containerID[:12] + "/merged"},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755"}},
			{Destination: "/etc/hostname", Type: "bind", Source: "/run/containers/storage/" + containerID[:12] + "/hostname", Options: []string{"rbind", "rprivate"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: fmt.Sprintf("kubepods-besteffort-pod%s.slice:crio:%s", a.PodUID, containerID),
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
				{Type: specs.NetworkNamespace, Path: "/var/run/netns/" + a.PodUID},
			},
		},
		Annotations: a.annotations(containerID),
	}
	if a.Broken == NoIdentity {
		s.Annotations = map[string]string{"io.container.manager": "unknown"}
	}
	if config, err = json.Marshal(cfg); err != nil {
		return nil, nil, err
	}
	if spec, err = json.Marshal(s); err != nil {
		return nil, nil, err
	}
	if a.Broken == HugeSpec {
		// Valid JSON that is far too large: an annotation of HugeSpecSize bytes.
		padded := make([]byte, 0, HugeSpecSize)
		padded = append(padded, spec[:len(spec)-1]...)
		padded = append(padded, []byte(`,"x-padding":"`)...)
		for len(padded) < HugeSpecSize-2 {
			padded = append(padded, 'x')
		}
		spec = append(padded, '"', '}')
	}
	return config, spec, nil
}

func (a *Archive) annotations(containerID string) map[string]string {
	switch a.Runtime {
	case Containerd:
		return map[string]string{
			"io.kubernetes.cri.container-type":    "container",
			"io.kubernetes.cri.container-name":    a.Container,
			"io.kubernetes.cri.sandbox-name":      a.Pod,
			"io.kubernetes.cri.sandbox-namespace": a.Namespace,
			"io.kubernetes.cri.sandbox-uid":       a.PodUID,
			"io.kubernetes.cri.sandbox-id":        fmt.Sprintf("%064x", hash(a.PodUID)),
			"io.kubernetes.cri.image-name":        a.Image,
		}
	case CRIU:
		return map[string]string{
			metadata.CheckpointAnnotationName:            a.Container,
			metadata.CheckpointAnnotationPod:             a.Pod,
			metadata.CheckpointAnnotationNamespace:       a.Namespace,
			metadata.CheckpointAnnotationPodUID:          a.PodUID,
			metadata.CheckpointAnnotationRootfsImageName: a.Image,
			metadata.CheckpointAnnotationEngine:          "checkpointctl",
		}
	default:
		labels, _ := json.Marshal(map[string]string{
			"io.kubernetes.container.name": a.Container,
			"io.kubernetes.pod.name":       a.Pod,
			"io.kubernetes.pod.namespace":  a.Namespace,
			"io.kubernetes.pod.uid":        a.PodUID,
		})
		return map[string]string{
			"io.kubernetes.cri-o.Labels":        string(labels),
			"io.kubernetes.cri-o.ContainerType": "container",
			"io.kubernetes.cri-o.ContainerID":   containerID,
			"io.kubernetes.cri-o.ImageName":     a.Image,
			"io.kubernetes.cri-o.Name":          fmt.Sprintf("k8s_%s_%s_%s_%s_0", a.Container, a.Pod, a.Namespace, a.PodUID),
			"io.kubernetes.pod.name":            a.Pod,
			"io.kubernetes.pod.namespace":       a.Namespace,
			"io.kubernetes.pod.uid":             a.PodUID,
			"io.kubernetes.container.name":      a.Container,
		}
	}
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
