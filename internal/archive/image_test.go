package archive_test

import (
	"testing"

	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
)

// TestReadImage covers the image an archive reports: what the pod asked for, in the words
// the runtime recorded, never an image ID while the image has a name, and never a pod's
// annotation.
func TestReadImage(t *testing.T) {
	tests := map[string]struct {
		archive *testarchive.Archive
		// want is by runtime; containerd's two generations agree.
		want map[testarchive.Runtime]string
	}{
		"a short name, which CRI-O names fully qualified": {
			archive: testarchive.New("shop", "cache-0", "redis").WithImage("redis:7", "docker.io/library/redis:7"),
			want:    map[testarchive.Runtime]string{testarchive.CRIO: "docker.io/library/redis:7", testarchive.Containerd: "redis:7"},
		},
		"a fully qualified name": {
			archive: testarchive.New("probe", "counter-0", "counter").WithImage("probe.local/counter:v1", "probe.local/counter:v1"),
			want:    map[testarchive.Runtime]string{testarchive.CRIO: "probe.local/counter:v1", testarchive.Containerd: "probe.local/counter:v1"},
		},
		// CRI-O 1.36 with a kubelet 1.37 on a node where the image has a second tag: the pod
		// that asked for the second tag got that tag (issue 35).
		"the second tag of an image": {
			archive: testarchive.New("probe", "counter-1", "counter").WithImage("probe.local/counter:v2", "probe.local/counter:v2"),
			want:    map[testarchive.Runtime]string{testarchive.CRIO: "probe.local/counter:v2", testarchive.Containerd: "probe.local/counter:v2"},
		},
		"an image without a name": {
			archive: testarchive.New("shop", "cache-0", "redis").WithImage("registry.example/redis@sha256:0123", ""),
			want: map[testarchive.Runtime]string{
				testarchive.CRIO:       testarchive.New("shop", "cache-0", "redis").WithImage("registry.example/redis@sha256:0123", "").ImageID(),
				testarchive.Containerd: "registry.example/redis@sha256:0123",
			},
		},
		"pod annotations naming another image": {
			archive: testarchive.New("shop", "cache-0", "redis").WithImage("redis:7", "docker.io/library/redis:7").WithPodAnnotations(map[string]string{
				"io.kubernetes.cri-o.ImageName":  "victim.example/miner:latest",
				"io.kubernetes.cri-o.Image":      "victim.example/miner:latest",
				"io.kubernetes.cri.image-name":   "victim.example/miner:latest",
				"io.kubernetes.cri-o.ImageRef":   "victim.example/miner:latest",
				"org.opencontainers.image.title": "victim.example/miner:latest",
			}),
			want: map[testarchive.Runtime]string{testarchive.CRIO: "docker.io/library/redis:7", testarchive.Containerd: "redis:7"},
		},
	}
	for name, tc := range tests {
		for _, rt := range testarchive.Runtimes {
			t.Run(name+"/"+string(rt), func(t *testing.T) {
				a := *tc.archive
				a.WithRuntime(rt).At(taken)
				res, err := archive.Read(a.MustWrite(t.TempDir()), archive.Limits{})
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
				want := tc.want[rt]
				if rt == testarchive.Containerd20 {
					want = tc.want[testarchive.Containerd]
				}
				if res.Identity.Image != want {
					t.Errorf("image %q, want %q", res.Identity.Image, want)
				}
				if res.Identity.Image != a.ReportedImage() {
					t.Errorf("image %q, but the test archive's ReportedImage says %q", res.Identity.Image, a.ReportedImage())
				}
			})
		}
	}
}
