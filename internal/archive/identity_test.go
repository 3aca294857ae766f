package archive

import (
	"testing"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
)

// TestImageFrom covers where the image comes from when a key is missing: always from what
// the runtime wrote, the name before the ID.
func TestImageFrom(t *testing.T) {
	const id = "849c1f27e7c5c4b1a1f1b0c4d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1"
	crio := func(annotations map[string]string) map[string]string {
		annotations[annotationManager] = crioManagerValue
		return annotations
	}
	tests := map[string]struct {
		annotations map[string]string
		config      *metadata.ContainerConfig
		want        string
	}{
		"CRI-O: the name in spec.dump": {
			annotations: crio(map[string]string{crioImage: id, crioImageName: "probe.local/counter:v1"}),
			config:      &metadata.ContainerConfig{RootfsImage: id, RootfsImageName: "probe.local/counter:v1"},
			want:        "probe.local/counter:v1",
		},
		"CRI-O: no name in spec.dump, config.dump's": {
			annotations: crio(map[string]string{crioImage: id, crioImageName: ""}),
			config:      &metadata.ContainerConfig{RootfsImage: id, RootfsImageName: "probe.local/counter:v1"},
			want:        "probe.local/counter:v1",
		},
		"CRI-O: an image without a name, its ID": {
			annotations: crio(map[string]string{crioImage: id, crioImageName: ""}),
			config:      &metadata.ContainerConfig{RootfsImage: id},
			want:        id,
		},
		"CRI-O: no config.dump and no name, the ID": {
			annotations: crio(map[string]string{crioImage: id}),
			want:        id,
		},
		// A kubelet that hands CRI-O the pod's words as ImageSpec.Image: the name still
		// wins, as it does for a kubelet that hands it the ID.
		"CRI-O: a name in io.kubernetes.cri-o.Image too": {
			annotations: crio(map[string]string{crioImage: "redis:7", crioImageName: "docker.io/library/redis:7"}),
			want:        "docker.io/library/redis:7",
		},
		"containerd: the user-specified image": {
			annotations: map[string]string{criContainerType: "container", criImageName: "redis:7"},
			config:      &metadata.ContainerConfig{RootfsImage: "docker.io/library/redis:7", RootfsImageName: "docker.io/library/redis:7"},
			want:        "redis:7",
		},
		"containerd: no annotation, config.dump's": {
			annotations: map[string]string{criContainerType: "container"},
			config:      &metadata.ContainerConfig{RootfsImage: "redis:7", RootfsImageName: "docker.io/library/redis:7"},
			want:        "redis:7",
		},
		"containerd: CRI-O's keys are not read": {
			annotations: map[string]string{criContainerType: "container", crioImageName: "victim:latest", crioImage: "victim:latest"},
			want:        "",
		},
		"no runtime: config.dump's": {
			annotations: map[string]string{crioImageName: "victim:latest"},
			config:      &metadata.ContainerConfig{RootfsImage: "redis:7"},
			want:        "redis:7",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := identityFrom(&metadata.Spec{Annotations: tc.annotations}, tc.config).Image
			if got != tc.want {
				t.Errorf("image %q, want %q", got, tc.want)
			}
		})
	}
}
