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

// entryHeaders reads every header of the archive with archive/tar.
func entryHeaders(t *testing.T, path string) []*tar.Header {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var out []*tar.Header
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		out = append(out, h)
	}
}

func TestLayouts(t *testing.T) {
	zone := time.FixedZone("CET", 3600)
	at := time.Date(2026, 11, 24, 10, 30, 0, 0, time.UTC)
	images := []string{"checkpoint/cgroup.img", "checkpoint/core-1.img", "checkpoint/descriptors.json", "checkpoint/fdinfo-2.img", "checkpoint/files.img", "checkpoint/fs-1.img", "checkpoint/ids-1.img", "checkpoint/inventory.img", "checkpoint/mm-1.img", "checkpoint/pagemap-1.img", "checkpoint/pages-1.img", "checkpoint/pstree.img", "checkpoint/seccomp.img", "checkpoint/tty-info.img"}
	// pages-1.img is listed with the CRIU images above, in name order; CRI-O walks the
	// directory in name order too.
	checkpointDir := append([]string{"checkpoint/"}, images...)
	type layout struct {
		names           []string
		indented        bool
		configName      string
		runtime         string
		rootfsImage     string
		rootfsImageName string
	}
	// The image's ID, as CRI-O writes it and as the kubelet hands it to CRI-O.
	crioImageID := New("shop", "cache-0", "redis").WithImage("redis:7", "docker.io/library/redis:7").ImageID()
	tests := map[Runtime]layout{
		CRIO: {
			names:      append(append([]string{"stats-dump", "dump.log"}, checkpointDir...), "config.dump", "spec.dump", "bind.mounts", "rootfs-diff.tar", "deleted.files", "io.kubernetes.cri-o.LogPath"),
			indented:   true,
			configName: "k8s_redis_cache-0_shop_uid-1_0", runtime: "crun", rootfsImage: crioImageID, rootfsImageName: "docker.io/library/redis:7",
		},
		Containerd20: {
			names:      append(checkpointDir, "config.dump", "rootfs-diff.tar", "spec.dump"),
			configName: "redis_cache-0_shop_uid-1_0", runtime: "io.containerd.runc.v2", rootfsImage: "redis:7", rootfsImageName: "docker.io/library/redis:7",
		},
		Containerd: {
			names:      append(checkpointDir, "config.dump", "container.log", "dump.log", "rootfs-diff.tar", "spec.dump", "stats-dump", "status", "status.dump"),
			configName: "redis_cache-0_shop_uid-1_0", runtime: "io.containerd.runc.v2", rootfsImage: "docker.io/library/redis:7", rootfsImageName: "docker.io/library/redis:7",
		},
	}
	for rt, want := range tests {
		t.Run(string(rt), func(t *testing.T) {
			a := New("shop", "cache-0", "redis").WithUID("uid-1").WithRuntime(rt).At(at).InZone(zone).
				WithImage("redis:7", "docker.io/library/redis:7").WithSize(256 << 10).WithRootfsDiff()
			path := a.MustWrite(t.TempDir())
			if got, want := filepath.Base(path), "checkpoint-cache-0_shop-redis-2026-11-24T11:30:00+01:00.tar"; got != want {
				t.Errorf("file name: got %q, want %q", got, want)
			}
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if info.Size() != 256<<10 || info.Mode().Perm() != 0o600 {
				t.Errorf("size %d mode %v, want %d and 0600 as the runtimes write it", info.Size(), info.Mode().Perm(), 256<<10)
			}
			var names []string
			for _, h := range entryHeaders(t, path) {
				names = append(names, h.Name)
				// containerd tells Go's writer PAX, CRI-O leaves it to the writer; either way
				// a header that needs no extended record is a USTAR block on disk.
				if h.Format != tar.FormatUSTAR {
					t.Errorf("%s: format %v, want USTAR", h.Name, h.Format)
				}
			}
			if diff := cmp.Diff(want.names, names); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}

			dir, _ := extractMetadata(t, path)
			raw, err := os.ReadFile(filepath.Join(dir, metadata.ConfigDumpFile))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.HasPrefix(string(raw), "{\n  \""); got != want.indented {
				t.Errorf("config.dump indented = %v, want %v:\n%s", got, want.indented, raw)
			}
			// checkpointedTime is the node's local time, with nanoseconds, as time.Now() marshals.
			if wantTime := `"checkpointedTime":` + map[bool]string{true: " "}[want.indented] + `"2026-11-24T11:30:00.123456789+01:00"`; !strings.Contains(string(raw), wantTime) {
				t.Errorf("config.dump lacks %s:\n%s", wantTime, raw)
			}
			cfg, _, err := metadata.ReadContainerCheckpointConfigDump(dir)
			if err != nil {
				t.Fatalf("checkpointctl reading config.dump: %v", err)
			}
			got := layout{configName: cfg.Name, runtime: cfg.OCIRuntime, rootfsImage: cfg.RootfsImage, rootfsImageName: cfg.RootfsImageName}
			if diff := cmp.Diff(layout{configName: want.configName, runtime: want.runtime, rootfsImage: want.rootfsImage, rootfsImageName: want.rootfsImageName}, got, cmp.AllowUnexported(layout{})); diff != "" {
				t.Errorf("config.dump (-want +got):\n%s", diff)
			}
			spec, _, err := metadata.ReadContainerCheckpointSpecDump(dir)
			if err != nil {
				t.Fatalf("checkpointctl reading spec.dump: %v", err)
			}
			if _, ok := spec.Annotations["io.kubernetes.cri-o.Labels"]; ok != (rt == CRIO) {
				t.Errorf("spec.dump has CRI-O's labels = %v on %s", ok, rt)
			}
		})
	}
}

func TestPodAnnotationsDoNotOverrideTheRuntime(t *testing.T) {
	forged := map[string]string{
		"io.kubernetes.cri.sandbox-namespace": "victim",
		"io.container.manager":                "podman",
		"io.kubernetes.pod.namespace":         "victim",
		"io.kubernetes.cri-o.Labels":          `{"io.kubernetes.pod.namespace":"victim"}`,
	}
	for _, rt := range Runtimes {
		t.Run(string(rt), func(t *testing.T) {
			a := New("tenant", "p", "c").WithRuntime(rt).WithPodAnnotations(forged).WithSize(0)
			dir, _ := extractMetadata(t, a.MustWrite(t.TempDir()))
			spec, _, err := metadata.ReadContainerCheckpointSpecDump(dir)
			if err != nil {
				t.Fatal(err)
			}
			got := spec.Annotations
			if rt == CRIO {
				// CRI-O copied them all, then set its own keys over them.
				want := map[string]string{"io.kubernetes.cri.sandbox-namespace": "victim", "io.container.manager": "cri-o", "io.kubernetes.pod.namespace": "tenant"}
				for k, v := range want {
					if got[k] != v {
						t.Errorf("%s = %q, want %q", k, got[k], v)
					}
				}
				if !strings.Contains(got["io.kubernetes.cri-o.Labels"], `"io.kubernetes.pod.namespace":"tenant"`) {
					t.Errorf("labels %s", got["io.kubernetes.cri-o.Labels"])
				}
				return
			}
			if got["io.kubernetes.cri.sandbox-namespace"] != "tenant" || got["io.container.manager"] != "podman" {
				t.Errorf("containerd's keys must win over passed-through ones, others pass: %v", got)
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
		OversizedEntry: func(t *testing.T, path string) {
			if err := readAll(path); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("want an unexpected EOF reading an entry declared beyond the file, got %v", err)
			}
		},
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

// TestCRIOArchiveAsCRIOWritesIt holds the layout to what a real CRI-O 1.36.3 archive held
// (issue 35): a container that deleted nothing, taken through the kubelet.
func TestCRIOArchiveAsCRIOWritesIt(t *testing.T) {
	a := New("probe", "counter-0", "counter").WithImage("probe.local/counter:v1", "probe.local/counter:v1")
	path := a.MustWrite(t.TempDir())
	top := map[string]bool{}
	for _, h := range entryHeaders(t, path) {
		top[strings.SplitN(h.Name, "/", 2)[0]] = true
	}
	want := map[string]bool{"checkpoint": true, "config.dump": true, "spec.dump": true, "stats-dump": true, "dump.log": true,
		"bind.mounts": true, "rootfs-diff.tar": true, "io.kubernetes.cri-o.LogPath": true}
	if diff := cmp.Diff(want, top); diff != "" {
		t.Errorf("top-level entries (-want +got):\n%s", diff)
	}

	dir, _ := extractMetadata(t, path)
	spec, _, err := metadata.ReadContainerCheckpointSpecDump(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := metadata.ReadContainerCheckpointConfigDump(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The kubelet hands CRI-O the image's ID; the name is CRI-O's for that image.
	got := map[string]string{
		"io.kubernetes.cri-o.Image":     spec.Annotations["io.kubernetes.cri-o.Image"],
		"io.kubernetes.cri-o.ImageName": spec.Annotations["io.kubernetes.cri-o.ImageName"],
		"io.kubernetes.cri-o.ImageRef":  spec.Annotations["io.kubernetes.cri-o.ImageRef"],
		"rootfsImage":                   cfg.RootfsImage,
		"rootfsImageName":               cfg.RootfsImageName,
		"rootfsImageRef":                cfg.RootfsImageRef,
	}
	id := a.ImageID()
	wantImages := map[string]string{
		"io.kubernetes.cri-o.Image": id, "io.kubernetes.cri-o.ImageName": "probe.local/counter:v1", "io.kubernetes.cri-o.ImageRef": id,
		"rootfsImage": id, "rootfsImageName": "probe.local/counter:v1", "rootfsImageRef": id,
	}
	if diff := cmp.Diff(wantImages, got); diff != "" {
		t.Errorf("images (-want +got):\n%s", diff)
	}
	if len(id) != 64 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Errorf("image ID %q, want 64 hex digits as CRI-O writes it", id)
	}
}
