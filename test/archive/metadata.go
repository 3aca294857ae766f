package archive

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// What the runtimes write into an archive besides the CRIU images: the container's
// config.dump and spec.dump with their annotations, its log, bind mounts and status.

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

func (a *Archive) imageID() string { return fmt.Sprintf("sha256:%064x", hash(a.Image)) }

// metadata returns config.dump and spec.dump as the runtime writes them.
func (a *Archive) metadata() (config, spec []byte, err error) {
	cfg := metadata.ContainerConfig{
		ID:             a.containerID(),
		Name:           a.containerName(),
		RootfsImageRef: a.imageID(),
		CreatedTime:    a.Time.Add(-time.Hour).In(a.zone()),
		CheckpointedAt: a.RuntimeTime(),
	}
	switch a.Runtime {
	case CRIO:
		// The pod's image, "some name" of it, and the runtime handler.
		cfg.RootfsImage, cfg.RootfsImageName, cfg.OCIRuntime = a.Image, a.ResolvedImage, "crun"
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
		"io.kubernetes.cri-o.Image":              a.Image,
		"io.kubernetes.cri-o.ImageName":          a.ResolvedImage,
		"io.kubernetes.cri-o.ImageRef":           a.imageID(),
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

// containerLog is the container's log in the CRI logging format.
func (a *Archive) containerLog() []byte {
	var b strings.Builder
	for i := 0; i < 12; i++ {
		fmt.Fprintf(&b, "%s stdout F %s: ready to accept connections (%d)\n", a.Time.Add(time.Duration(i-12)*time.Minute).In(a.zone()).Format(time.RFC3339Nano), a.Container, i)
	}
	return []byte(b.String())
}

// bindMounts is CRI-O's record of the container's bind mounts, for a restore.
func (a *Archive) bindMounts() []byte {
	data, _ := json.MarshalIndent([]map[string]any{
		{"source": "/var/lib/kubelet/pods/" + a.PodUID + "/etc-hosts", "destination": "/etc/hosts", "file_type": "file", "permissions": 0o644},
		{"source": "/var/lib/kubelet/pods/" + a.PodUID + "/containers/" + a.Container + "/0", "destination": "/dev/termination-log", "file_type": "file", "permissions": 0o644},
	}, "", "  ")
	return data
}

// criStatus is containerd's status.dump: the CRI container status as JSON.
func (a *Archive) criStatus() []byte {
	data, _ := json.Marshal(map[string]any{
		"id":         a.containerID(),
		"metadata":   map[string]any{"name": a.Container},
		"state":      1,
		"created_at": a.Time.Add(-time.Hour).UnixNano(),
		"started_at": a.Time.Add(-time.Hour + time.Second).UnixNano(),
		"image":      map[string]any{"image": a.ResolvedImage},
		"image_ref":  a.imageID(),
		"labels":     map[string]string{"io.kubernetes.container.name": a.Container, "io.kubernetes.pod.name": a.Pod, "io.kubernetes.pod.namespace": a.Namespace, "io.kubernetes.pod.uid": a.PodUID},
		"log_path":   fmt.Sprintf("/var/log/pods/%s_%s_%s/%s/0.log", a.Namespace, a.Pod, a.PodUID, a.Container),
	})
	return data
}
