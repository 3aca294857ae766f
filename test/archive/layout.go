package archive

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// entry is one entry of the archive: a file with its data or a length of filler, or a
// directory, or (for hostile archives) any header.
type entry struct {
	name   string
	data   []byte
	filler int64
	dir    bool
	// header, when set, is written as it is, followed by data.
	header *tar.Header
}

// crioLogEntry is the name CRI-O gives the container log inside the archive: the name of
// the annotation that holds the log's path on the node.
const crioLogEntry = "io.kubernetes.cri-o.LogPath"

// entries returns the archive's entries in the runtime's order.
func (a *Archive) entries() ([]entry, error) {
	config, spec, err := a.metadata()
	if err != nil {
		return nil, err
	}
	images := criuImages(a.Time)
	pages := entry{name: metadata.CheckpointDirectory + "/pages-1.img"}
	checkpointDir := append([]entry{{name: metadata.CheckpointDirectory + "/", dir: true}}, images...)
	checkpointDir = append(checkpointDir, pages)
	// Both runtimes walk the directory, in name order.
	sort.SliceStable(checkpointDir, func(i, j int) bool { return checkpointDir[i].name < checkpointDir[j].name })
	log := entry{data: a.containerLog()}
	statsDump := entry{name: "stats-dump", data: criuImage(0x57, "stats dump")}
	dumpLog := entry{name: metadata.DumpLogFile, data: []byte(fmt.Sprintf("(00.000012) Version: 4.1 (gitid 0)\n(00.031415) Dumping finished successfully\n(%s)\n", a.RuntimeTime().Format(time.RFC3339Nano)))}
	rootfsDiff := entry{name: metadata.RootFsDiffTar, filler: 1 << 10}

	var out []entry
	switch a.Runtime {
	case Containerd, Containerd20:
		out = append(out, checkpointDir...)
		out = append(out,
			entry{name: metadata.ConfigDumpFile, data: config},
			rootfsDiff,
			entry{name: metadata.SpecDumpFile, data: spec},
		)
		if a.Runtime == Containerd {
			log.name = "container.log"
			status, _ := json.Marshal(metadata.ContainerdStatus{CreatedAt: a.Time.Add(-time.Hour).UnixNano(), StartedAt: a.Time.Add(-time.Hour + time.Second).UnixNano(), Pid: 4242})
			out = append(out, log, dumpLog, statsDump,
				entry{name: metadata.StatusFile, data: status},
				entry{name: metadata.StatusDumpFile, data: a.criStatus()})
		}
		// containerd archives a directory walk: entries come in name order.
		sort.SliceStable(out, func(i, j int) bool { return out[i].name < out[j].name })
	default:
		out = append(out, statsDump, dumpLog)
		out = append(out, checkpointDir...)
		out = append(out,
			entry{name: metadata.ConfigDumpFile, data: config},
			entry{name: metadata.SpecDumpFile, data: spec},
			entry{name: "bind.mounts", data: a.bindMounts()},
		)
		// CRI-O makes /etc/mtab a symlink in every container whose image has none, so the
		// rootfs diff is there even for a container that wrote nothing.
		out = append(out, rootfsDiff)
		if a.RootfsDiff {
			out = append(out, entry{name: metadata.DeletedFilesFile, data: []byte("[\n  \"/tmp/cache.lock\"\n]")})
		}
		log.name = crioLogEntry
		out = append(out, log)
	}
	return out, nil
}

// writeTar writes the archive and returns an offset inside its last entry's data, where
// a Truncated archive is cut.
func (a *Archive) writeTar(w io.Writer) (int64, error) {
	entries, err := a.entries()
	if err != nil {
		return 0, err
	}
	entries = a.hostile(entries)

	// The memory pages take whatever the requested size leaves.
	used := int64(1024) // end-of-archive blocks
	pagesAt := -1
	for i, e := range entries {
		used += 512 + blocks(int64(len(e.data))+e.filler)
		if e.name == metadata.CheckpointDirectory+"/pages-1.img" {
			pagesAt = i
		}
	}
	if pagesAt >= 0 && a.Size > used {
		entries[pagesAt].filler = blocks(a.Size - used)
	}

	cw := &countingWriter{w: w}
	tw := tar.NewWriter(cw)
	// The runtimes truncate entry times to the second; both tar writers then pick
	// USTAR headers (CRI-O) or are told PAX (containerd).
	mod := a.Time.In(a.zone()).Truncate(time.Second)
	format := tar.FormatUSTAR
	if a.Runtime != CRIO {
		format = tar.FormatPAX
	}
	var cut int64
	for _, e := range entries {
		hdr := e.header
		if hdr == nil {
			hdr = &tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: 0o600, Size: int64(len(e.data)) + e.filler, ModTime: mod, Format: format}
			if e.dir {
				hdr = &tar.Header{Typeflag: tar.TypeDir, Name: e.name, Mode: 0o700, ModTime: mod, Format: format}
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return 0, err
		}
		// The writer has padded the previous entry and written this header: cw.n is
		// where this entry's data starts.
		cut = cw.n + (int64(len(e.data))+e.filler)/2
		if a.Broken == OversizedEntry && e.name == metadata.CheckpointDirectory+"/pages-1.img" {
			a.oversizedAt = cw.n - 512
		}
		if _, err := tw.Write(e.data); err != nil {
			return 0, err
		}
		if err := writeFiller(tw, e.filler); err != nil {
			return 0, err
		}
	}
	return cut, tw.Close()
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func blocks(n int64) int64 { return (n + 511) / 512 * 512 }

var zeros = make([]byte, 1<<20)

// writeFiller writes n bytes that stand for memory pages: zeros.
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

func (a *Archive) containerID() string {
	return fmt.Sprintf("%016x%016x%016x%016x", hash(a.Container), hash(a.Pod), hash(a.Namespace), a.Time.UnixNano())
}

// containerName is config.dump's name, which each runtime builds from the pod's CRI
// metadata (attempt 0).
func (a *Archive) containerName() string {
	name := strings.Join([]string{a.Container, a.Pod, a.Namespace, a.PodUID, "0"}, "_")
	if a.Runtime == CRIO {
		return "k8s_" + name
	}
	return name
}

// ImageID is the image's ID as the runtime writes it: CRI-O 64 hex digits, containerd
// with the digest's algorithm.
func (a *Archive) ImageID() string {
	id := fmt.Sprintf("%016x%016x%016x%016x", hash(a.Image), hash(a.Image+"/1"), hash(a.Image+"/2"), hash(a.Image+"/3"))
	if a.Runtime == CRIO {
		return id
	}
	return "sha256:" + id
}

// metadata returns config.dump and spec.dump as the runtime writes them.
func (a *Archive) metadata() (config, spec []byte, err error) {
	cfg := metadata.ContainerConfig{
		ID:             a.containerID(),
		Name:           a.containerName(),
		RootfsImageRef: a.ImageID(),
		CreatedTime:    a.Time.Add(-time.Hour).In(a.zone()),
		CheckpointedAt: a.RuntimeTime(),
	}
	switch a.Runtime {
	case CRIO:
		// The image the kubelet handed CRI-O (its ID), the name CRI-O found for it, and
		// the runtime handler.
		cfg.RootfsImage, cfg.RootfsImageName, cfg.OCIRuntime = a.ImageID(), a.ResolvedImage, "crun"
	case Containerd20:
		// The user-specified image and the image's first reference.
		cfg.RootfsImage, cfg.RootfsImageName, cfg.OCIRuntime = a.Image, a.ResolvedImage, "io.containerd.runc.v2"
	default:
		// Both from the CRI container status: the image's first tag.
		cfg.RootfsImage, cfg.RootfsImageName, cfg.OCIRuntime = a.ResolvedImage, a.ResolvedImage, "io.containerd.runc.v2"
	}
	s := a.spec()
	switch a.Broken {
	case NoIdentity:
		s.Annotations = map[string]string{"io.container.manager": "unknown"}
	case HugeAnnotation:
		s.Annotations["example.com/blob"] = strings.Repeat("A", HugeAnnotationSize)
	case NonUTF8:
		s.Annotations["example.com/bytes"] = nonUTF8Placeholder
	}
	if a.Runtime == CRIO {
		// CRI-O writes both with checkpointctl's indenting JSON writer.
		config, err = json.MarshalIndent(cfg, "", "  ")
		if err == nil {
			spec, err = json.MarshalIndent(s, "", "  ")
		}
	} else {
		config, err = json.Marshal(cfg)
		if err == nil {
			spec, err = json.Marshal(s)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	switch a.Broken {
	case HugeSpec:
		spec = padSpec(spec, HugeSpecSize)
	case NonUTF8:
		// Go's encoder would have replaced the bytes; a hostile writer need not.
		spec = []byte(strings.Replace(string(spec), nonUTF8Placeholder, "\xff\xfe\xfd", 1))
	}
	return config, spec, nil
}

// padSpec makes spec.dump size bytes long with one more annotation-like field: valid
// JSON, far too large.
func padSpec(spec []byte, size int) []byte {
	padded := make([]byte, 0, size)
	padded = append(padded, spec[:len(spec)-1]...)
	padded = append(padded, []byte(`,"x-padding":"`)...)
	for len(padded) < size-2 {
		padded = append(padded, 'x')
	}
	return append(padded, '"', '}')
}

func (a *Archive) spec() *specs.Spec {
	id := a.containerID()
	cgroup := fmt.Sprintf("kubepods-besteffort-pod%s.slice:crio:%s", strings.ReplaceAll(a.PodUID, "-", "_"), id)
	root := "/var/lib/containers/storage/overlay/" + id[:12] + "/merged"
	if a.Runtime != CRIO {
		cgroup = fmt.Sprintf("kubepods-besteffort-pod%s.slice:cri-containerd:%s", strings.ReplaceAll(a.PodUID, "-", "_"), id)
		root = "rootfs"
	}
	return &specs.Spec{
		Version:  specs.Version,
		Hostname: a.Pod,
		Process: &specs.Process{
			User: specs.User{UID: 999, GID: 999},
			Args: []string{"/usr/local/bin/" + a.Container},
			Env:  []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=" + a.Pod},
			Cwd:  "/data",
		},
		Root: &specs.Root{Path: root},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755"}},
			{Destination: "/etc/hostname", Type: "bind", Source: "/run/containers/storage/" + id[:12] + "/hostname", Options: []string{"rbind", "rprivate"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: cgroup,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
				{Type: specs.NetworkNamespace, Path: "/var/run/netns/" + a.PodUID},
			},
		},
		Annotations: a.annotations(),
	}
}

// annotations are spec.dump's annotations, set in the runtime's order: later keys win.
func (a *Archive) annotations() map[string]string {
	out := map[string]string{}
	// Both runtimes start from the pod's annotations (CRI-O copies all of them).
	for k, v := range a.PodAnnotations {
		out[k] = v
	}
	id := a.containerID()
	sandboxID := fmt.Sprintf("%064x", hash(a.PodUID))
	if a.Runtime != CRIO {
		for k, v := range map[string]string{
			"io.kubernetes.cri.sandbox-id":        sandboxID,
			"io.kubernetes.cri.sandbox-namespace": a.Namespace,
			"io.kubernetes.cri.sandbox-uid":       a.PodUID,
			"io.kubernetes.cri.sandbox-name":      a.Pod,
			"io.kubernetes.cri.container-name":    a.Container,
			"io.kubernetes.cri.image-name":        a.Image,
			"io.kubernetes.cri.container-type":    "container",
		} {
			out[k] = v
		}
		return out
	}
	labels := map[string]string{
		"io.kubernetes.container.name": a.Container,
		"io.kubernetes.pod.name":       a.Pod,
		"io.kubernetes.pod.namespace":  a.Namespace,
		"io.kubernetes.pod.uid":        a.PodUID,
	}
	kubeAnnotations := map[string]string{
		"io.kubernetes.container.hash":                     fmt.Sprintf("%08x", uint32(hash(a.Container))),
		"io.kubernetes.container.restartCount":             "0",
		"io.kubernetes.container.terminationMessagePath":   "/dev/termination-log",
		"io.kubernetes.container.terminationMessagePolicy": "File",
		"io.kubernetes.pod.terminationGracePeriod":         "30",
	}
	labelsJSON, _ := json.Marshal(labels)
	kubeJSON, _ := json.Marshal(kubeAnnotations)
	meta, _ := json.Marshal(map[string]any{"name": a.Container})
	logPath := fmt.Sprintf("/var/log/pods/%s_%s_%s/%s/0.log", a.Namespace, a.Pod, a.PodUID, a.Container)
	for k, v := range map[string]string{
		"io.kubernetes.cri-o.Image":              a.ImageID(),
		"io.kubernetes.cri-o.ImageName":          a.ResolvedImage,
		"io.kubernetes.cri-o.ImageRef":           a.ImageID(),
		"io.kubernetes.cri-o.Name":               a.containerName(),
		"io.kubernetes.cri-o.ContainerID":        id,
		"io.kubernetes.cri-o.SandboxID":          sandboxID,
		"io.kubernetes.cri-o.SandboxName":        strings.Join([]string{"k8s", a.Pod, a.Namespace, a.PodUID, "0"}, "_"),
		"io.kubernetes.cri-o.ContainerType":      "container",
		"io.kubernetes.cri-o.LogPath":            logPath,
		"io.kubernetes.cri-o.TTY":                "false",
		"io.kubernetes.cri-o.Stdin":              "false",
		"io.kubernetes.cri-o.StdinOnce":          "false",
		"io.kubernetes.cri-o.ResolvPath":         "/run/containers/storage/overlay-containers/" + sandboxID + "/userdata/resolv.conf",
		"io.container.manager":                   "cri-o",
		"io.kubernetes.cri-o.MountPoint":         "/var/lib/containers/storage/overlay/" + id[:12] + "/merged",
		"io.kubernetes.cri-o.SeccompProfilePath": "RuntimeDefault",
		"io.kubernetes.cri-o.Created":            a.Time.Add(-time.Hour).In(a.zone()).Format(time.RFC3339Nano),
		"io.kubernetes.cri-o.Metadata":           string(meta),
		"io.kubernetes.cri-o.Labels":             string(labelsJSON),
		"io.kubernetes.cri-o.Volumes":            "[]",
		"io.kubernetes.cri-o.Annotations":        string(kubeJSON),
		"io.kubernetes.cri-o.IP.0":               "10.85.0.12",
	} {
		out[k] = v
	}
	// Then the kubelet's container annotations and labels.
	for k, v := range kubeAnnotations {
		out[k] = v
	}
	for k, v := range labels {
		out[k] = v
	}
	return out
}
