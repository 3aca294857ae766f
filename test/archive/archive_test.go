package archive

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
	"github.com/google/go-cmp/cmp"
)

// extractMetadata reads the archive with archive/tar, checks every entry's header, and
// writes config.dump and spec.dump into a directory for checkpointctl's readers.
func extractMetadata(t *testing.T, path string) (dir string, names []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	dir = t.TempDir()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		names = append(names, h.Name)
		if h.Name == metadata.ConfigDumpFile || h.Name == metadata.SpecDumpFile {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, h.Name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir, names
}

func TestArchiveReadsBackWithCheckpointctl(t *testing.T) {
	at := time.Date(2026, 11, 24, 10, 30, 0, 0, time.UTC)
	type identity struct{ Namespace, Pod, UID, Container, Image string }
	cases := map[string]struct {
		runtime Runtime
		lookup  func(map[string]string) identity
	}{
		"cri-o": {CRIO, func(a map[string]string) identity {
			return identity{a["io.kubernetes.pod.namespace"], a["io.kubernetes.pod.name"], a["io.kubernetes.pod.uid"], a["io.kubernetes.container.name"], a["io.kubernetes.cri-o.ImageName"]}
		}},
		"containerd": {Containerd, func(a map[string]string) identity {
			return identity{a["io.kubernetes.cri.sandbox-namespace"], a["io.kubernetes.cri.sandbox-name"], a["io.kubernetes.cri.sandbox-uid"], a["io.kubernetes.cri.container-name"], a["io.kubernetes.cri.image-name"]}
		}},
		"criu": {CRIU, func(a map[string]string) identity {
			return identity{a[metadata.CheckpointAnnotationNamespace], a[metadata.CheckpointAnnotationPod], a[metadata.CheckpointAnnotationPodUID], a[metadata.CheckpointAnnotationName], a[metadata.CheckpointAnnotationRootfsImageName]}
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a := New("shop", "cache-0", "redis").WithRuntime(tc.runtime).At(at).WithSize(256 << 10).WithRootfsDiff()
			path := a.MustWrite(t.TempDir())

			if got, want := filepath.Base(path), "checkpoint-cache-0_shop-redis-2026-11-24T10:30:00Z.tar"; got != want {
				t.Errorf("file name: got %q, want %q", got, want)
			}
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if info.Size() != 256<<10 {
				t.Errorf("size: got %d, want %d", info.Size(), 256<<10)
			}
			if info.Mode().Perm() != 0o600 {
				t.Errorf("mode: got %v, want 0600 as the kubelet writes it", info.Mode().Perm())
			}

			dir, names := extractMetadata(t, path)
			for _, want := range []string{"checkpoint/", "checkpoint/inventory.img", "checkpoint/pages-1.img", "config.dump", "spec.dump", "rootfs-diff.tar"} {
				if !contains(names, want) {
					t.Errorf("archive lacks %s; has %v", want, names)
				}
			}

			cfg, _, err := metadata.ReadContainerCheckpointConfigDump(dir)
			if err != nil {
				t.Fatalf("checkpointctl reading config.dump: %v", err)
			}
			if !cfg.CheckpointedAt.Equal(at) || cfg.RootfsImageName != a.Image {
				t.Errorf("config.dump: checkpointed %v image %q, want %v %q", cfg.CheckpointedAt, cfg.RootfsImageName, at, a.Image)
			}
			spec, _, err := metadata.ReadContainerCheckpointSpecDump(dir)
			if err != nil {
				t.Fatalf("checkpointctl reading spec.dump: %v", err)
			}
			want := identity{"shop", "cache-0", a.PodUID, "redis", a.Image}
			if diff := cmp.Diff(want, tc.lookup(spec.Annotations)); diff != "" {
				t.Errorf("identity annotations (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFileNameWithOffset(t *testing.T) {
	zone := time.FixedZone("CET", 3600)
	a := New("team-prod", "web-7d9f", "nginx").NamedAt(time.Date(2026, 1, 2, 3, 4, 5, 0, zone))
	if got, want := a.FileName(), "checkpoint-web-7d9f_team-prod-nginx-2026-01-02T03:04:05+01:00.tar"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLargeArchiveHasExactSize(t *testing.T) {
	path := New("ns", "p", "c").WithSize(8 << 20).MustWrite(t.TempDir())
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() != 8<<20 {
		t.Errorf("size %d, want %d", info.Size(), 8<<20)
	}
}

func TestBrokenVariants(t *testing.T) {
	cases := map[Broken]func(t *testing.T, path string){
		Truncated: func(t *testing.T, path string) {
			if err := readAll(path); err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("want an unexpected EOF reading a truncated archive, got %v", err)
			}
		},
		NotTar: func(t *testing.T, path string) {
			if err := readAll(path); err == nil {
				t.Error("want an error reading a file that is not a tar")
			}
		},
		NoIdentity: func(t *testing.T, path string) {
			dir, _ := extractMetadata(t, path)
			spec, _, err := metadata.ReadContainerCheckpointSpecDump(dir)
			if err != nil {
				t.Fatal(err)
			}
			for k := range spec.Annotations {
				if strings.Contains(k, "namespace") || strings.Contains(k, "pod") {
					t.Errorf("annotation %s names a pod", k)
				}
			}
		},
		HugeSpec: func(t *testing.T, path string) {
			f, _ := os.Open(path)
			defer func() { _ = f.Close() }()
			tr := tar.NewReader(f)
			for {
				h, err := tr.Next()
				if err != nil {
					t.Fatalf("no spec.dump: %v", err)
				}
				if h.Name == metadata.SpecDumpFile {
					if h.Size < HugeSpecSize-1 {
						t.Errorf("spec.dump is %d bytes, want about %d", h.Size, HugeSpecSize)
					}
					return
				}
			}
		},
		Symlink: func(t *testing.T, path string) {
			info, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if info.Mode()&os.ModeSymlink == 0 {
				t.Fatalf("mode %v, want a symlink", info.Mode())
			}
			target, _ := os.Readlink(path)
			if filepath.Dir(target) == filepath.Dir(path) {
				t.Errorf("symlink points inside the directory: %s", target)
			}
			if err := readAll(target); err != nil {
				t.Errorf("the symlink's target should be a valid archive: %v", err)
			}
		},
		Directory: func(t *testing.T, path string) {
			info, err := os.Lstat(path)
			if err != nil || !info.IsDir() {
				t.Errorf("want a directory, got %v, %v", info, err)
			}
		},
	}
	for kind, check := range cases {
		t.Run(string(kind), func(t *testing.T) {
			a := New("shop", "cache-0", "redis").Damaged(kind)
			path := a.MustWrite(t.TempDir())
			if filepath.Base(path) != a.FileName() {
				t.Errorf("broken archive named %s, want the kubelet name %s", filepath.Base(path), a.FileName())
			}
			check(t, path)
		})
	}
}

func readAll(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	tr := tar.NewReader(f)
	for {
		_, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return err
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
