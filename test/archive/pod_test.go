package archive

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
)

func TestImageAsAsked(t *testing.T) {
	tests := map[string]struct {
		asked, reported string
		want            bool
	}{
		"the same":                                       {"probe.local/counter:v1", "probe.local/counter:v1", true},
		"a short name, CRI-O's name for it":              {"redis:7", "docker.io/library/redis:7", true},
		"a short name with a path":                       {"bitnami/redis:7", "docker.io/bitnami/redis:7", true},
		"a short name resolved through another registry": {"redis:7", "quay.io/library/redis:7", true},
		"no tag is latest":                               {"redis", "docker.io/library/redis:latest", true},
		"a registry with a port, no tag":                 {"localhost:5000/app", "localhost:5000/app:latest", true},
		"a digest":                                       {"registry.example/app@sha256:0123", "registry.example/app@sha256:0123", true},
		"another tag":                                    {"redis:7", "docker.io/library/redis:6", false},
		"another registry for a qualified name":          {"probe.local/counter:v1", "docker.io/probe.local/counter:v1", false},
		"an image ID":                                    {"redis:7", "849c1f27e7c5c4b1a1f1b0c4d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1", false},
		"another image under the short name's path":      {"redis:7", "docker.io/library/other/redis:7", false},
		"a path without a registry is not a resolution":  {"redis:7", "library/redis:7", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := ImageAsAsked(tc.asked, tc.reported); got != tc.want {
				t.Errorf("ImageAsAsked(%q, %q) = %v, want %v", tc.asked, tc.reported, got, tc.want)
			}
		})
	}
}

func TestComparePod(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "probe", Name: "counter-0", UID: "7d1c5b0e-2f0e-4a4f-9a53-0c1e2d3f4a5b"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "counter", Image: "probe.local/counter:v1"}}},
	}
	from := time.Date(2026, 12, 7, 3, 0, 0, 500e6, time.UTC)
	to := from.Add(5 * time.Second)
	right := archive.Identity{Namespace: "probe", Pod: "counter-0", PodUID: "7d1c5b0e-2f0e-4a4f-9a53-0c1e2d3f4a5b", Container: "counter",
		Image: "probe.local/counter:v1", Runtime: archive.RuntimeCRIO, CheckpointTime: from.Add(time.Second), TimeSource: archive.TimeFromArchive}
	tests := map[string]struct {
		change    func(*archive.Identity)
		container string
		want      []string
	}{
		"all right": {},
		// The kubelet's file name holds whole seconds.
		"the file name's time, the second the request began": {change: func(id *archive.Identity) {
			id.CheckpointTime, id.TimeSource = from.Truncate(time.Second), archive.TimeFromFileName
		}},
		"the image ID": {
			change: func(id *archive.Identity) { id.Image = "849c1f27" },
			want:   []string{`image: the archive says "849c1f27", the pod asked for "probe.local/counter:v1"`},
		},
		"another namespace and UID": {
			change: func(id *archive.Identity) { id.Namespace, id.PodUID = "victim", "" },
			want: []string{`namespace: the archive says "victim", the pod "probe"`,
				`pod UID: the archive says "", the pod "7d1c5b0e-2f0e-4a4f-9a53-0c1e2d3f4a5b"`},
		},
		"a container the pod does not have": {
			container: "sidecar",
			want:      []string{`container: the archive says "counter", the pod "sidecar"`, `container: the pod has no container "sidecar"`},
		},
		"a time after the request": {
			change: func(id *archive.Identity) { id.CheckpointTime = to.Add(time.Minute) },
			want: []string{"time: the archive says 2026-12-07T03:01:05.5Z (from the archive), the checkpoint was asked for between " +
				"2026-12-07T03:00:00.5Z and 2026-12-07T03:00:05.5Z"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			id := right
			if tc.change != nil {
				tc.change(&id)
			}
			container := "counter"
			if tc.container != "" {
				container = tc.container
			}
			if diff := cmp.Diff(tc.want, ComparePod(id, pod, container, from, to)); diff != "" {
				t.Errorf("differences (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCompareRecorded runs the comparison a node suite runs on real archives over this
// package's layouts, and shows that it catches a reader that reports the image ID.
func TestCompareRecorded(t *testing.T) {
	at := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	want := map[string][]string{}
	for _, rt := range Runtimes {
		a := New("probe-"+string(rt), "counter-0", "counter").WithRuntime(rt).At(at).WithImage("redis:7", "docker.io/library/redis:7")
		path := a.MustWrite(dir)
		pod := corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: a.Namespace, Name: a.Pod, UID: types.UID(a.PodUID)},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "counter", Image: "redis:7"}}},
		}
		if err := WritePodRecord(path, PodRecord{Pod: pod, Container: "counter", From: at, To: at.Add(time.Second)}); err != nil {
			t.Fatal(err)
		}
		want[a.FileName()] = nil
		// A pod that asked for another image: the comparison must see it.
		other := New("other-"+string(rt), "counter-0", "counter").WithRuntime(rt).At(at).WithImage("redis:7", "docker.io/library/redis:7")
		otherPath := other.MustWrite(dir)
		pod.Namespace, pod.UID, pod.Spec.Containers[0].Image = other.Namespace, types.UID(other.PodUID), "redis:6"
		if err := WritePodRecord(otherPath, PodRecord{Pod: pod, Container: "counter", From: at, To: at.Add(time.Second)}); err != nil {
			t.Fatal(err)
		}
		want[other.FileName()] = []string{fmt.Sprintf("image: the archive says %q, the pod asked for \"redis:6\"", other.ReportedImage())}
	}
	got, err := CompareRecorded(dir, archive.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("differences by archive (-want +got):\n%s", diff)
	}
	if _, err := CompareRecorded(t.TempDir(), archive.Limits{}); err == nil {
		t.Error("a directory without records compared without an error")
	}
}
