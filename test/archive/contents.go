package archive

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
)

// The contents of the entries other than the metadata: CRIU's images, the log, CRI-O's
// bind mounts and containerd's status.

// criuImage is a small file in CRIU's image format: a magic, then protobuf-like bytes.
func criuImage(kind byte, what string) []byte {
	return append([]byte{0x54, 0x56, 0x41, 0x58, kind, 0, 0, 0}, []byte(what)...)
}

// criuImages are the small CRIU image files of a checkpoint.
func criuImages(t time.Time) []entry {
	names := []string{"cgroup.img", "core-1.img", "descriptors.json", "fdinfo-2.img", "files.img", "fs-1.img", "ids-1.img", "inventory.img", "mm-1.img", "pagemap-1.img", "pstree.img", "seccomp.img", "tty-info.img"}
	out := make([]entry, 0, len(names))
	for i, n := range names {
		out = append(out, entry{name: metadata.CheckpointDirectory + "/" + n, data: criuImage(byte(i), fmt.Sprintf("criu image %s taken %d", n, t.Unix()))})
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
		"image_ref":  a.ImageID(),
		"labels":     map[string]string{"io.kubernetes.container.name": a.Container, "io.kubernetes.pod.name": a.Pod, "io.kubernetes.pod.namespace": a.Namespace, "io.kubernetes.pod.uid": a.PodUID},
		"log_path":   fmt.Sprintf("/var/log/pods/%s_%s_%s/%s/0.log", a.Namespace, a.Pod, a.PodUID, a.Container),
	})
	return data
}
