package archive_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
)

var taken = time.Date(2026, 11, 24, 10, 30, 0, 0, time.UTC)

func TestReadIdentity(t *testing.T) {
	tests := map[string]struct {
		archive *testarchive.Archive
		want    archive.Identity
	}{
		"cri-o": {
			archive: testarchive.New("shop", "cache-0", "redis").WithUID("uid-1").At(taken),
			want: archive.Identity{Namespace: "shop", Pod: "cache-0", PodUID: "uid-1", Container: "redis",
				Image: "registry.example/redis:1.0", Runtime: "cri-o", CheckpointTime: taken, TimeSource: archive.TimeFromArchive},
		},
		"containerd": {
			archive: testarchive.New("team-prod", "web-7f9c", "nginx").WithUID("uid-2").WithRuntime(testarchive.Containerd).At(taken),
			want: archive.Identity{Namespace: "team-prod", Pod: "web-7f9c", PodUID: "uid-2", Container: "nginx",
				Image: "registry.example/nginx:1.0", Runtime: "containerd", CheckpointTime: taken, TimeSource: archive.TimeFromArchive},
		},
		"checkpointctl annotations": {
			archive: testarchive.New("a-b", "c-d", "e-f").WithUID("uid-3").WithRuntime(testarchive.CRIU).At(taken),
			want: archive.Identity{Namespace: "a-b", Pod: "c-d", PodUID: "uid-3", Container: "e-f",
				Image: "registry.example/e-f:1.0", Runtime: "checkpointctl", CheckpointTime: taken, TimeSource: archive.TimeFromArchive},
		},
		"rootfs diff after the metadata, 1 MiB": {
			archive: testarchive.New("shop", "cache-0", "redis").WithUID("uid-1").At(taken).WithRootfsDiff().WithSize(1 << 20),
			want: archive.Identity{Namespace: "shop", Pod: "cache-0", PodUID: "uid-1", Container: "redis",
				Image: "registry.example/redis:1.0", Runtime: "cri-o", CheckpointTime: taken, TimeSource: archive.TimeFromArchive},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			file := tc.archive.MustWrite(t.TempDir())
			res, err := archive.Read(file, archive.Limits{})
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if diff := cmp.Diff(tc.want, res.Identity); diff != "" {
				t.Errorf("identity (-want +got):\n%s", diff)
			}
			if res.BytesRead > 32<<10 {
				t.Errorf("read %d bytes of a %d-byte archive; want only headers and metadata (under 32 KiB)", res.BytesRead, tc.archive.Size)
			}
		})
	}
}

func TestReadBroken(t *testing.T) {
	tests := map[testarchive.Broken]archive.Reason{
		testarchive.Truncated:  archive.ReasonTruncated,
		testarchive.NotTar:     archive.ReasonNotTar,
		testarchive.NoIdentity: archive.ReasonNoIdentity,
		testarchive.HugeSpec:   archive.ReasonMetadataTooLarge,
		testarchive.Symlink:    archive.ReasonNotRegular,
		testarchive.Directory:  archive.ReasonNotRegular,
	}
	for broken, want := range tests {
		t.Run(string(broken), func(t *testing.T) {
			a := testarchive.New("shop", "cache-0", "redis").At(taken).Damaged(broken)
			file := a.MustWrite(t.TempDir())
			if broken == testarchive.Symlink {
				target, _ := os.Readlink(file)
				t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(target)) })
			}
			res, err := archive.Read(file, archive.Limits{})
			if err == nil {
				t.Fatalf("Read returned identity %+v, want a %s error", res.Identity, want)
			}
			if got := archive.ReasonOf(err); got != want {
				t.Errorf("reason = %s, want %s (error: %v)", got, want, err)
			}
			if res.BytesRead > 2<<20 {
				t.Errorf("read %d bytes, want at most the metadata cap", res.BytesRead)
			}
			if _, err := os.Lstat(file); err != nil {
				t.Errorf("the broken archive is gone: %v", err)
			}
		})
	}
}

func TestTimeFromName(t *testing.T) {
	tests := map[string]struct {
		name   string
		want   time.Time
		wantOK bool
	}{
		"utc":         {name: "checkpoint-cache-0_shop-redis-2026-11-24T10:30:00Z.tar", want: taken, wantOK: true},
		"offset":      {name: "checkpoint-p_ns-c-2026-11-24T11:30:00+01:00.tar", want: taken, wantOK: true},
		"fraction":    {name: "checkpoint-p_ns-c-2026-11-24T10:30:00.5Z.tar", want: taken.Add(500 * time.Millisecond), wantOK: true},
		"no time":     {name: "checkpoint-p_ns-c.tar"},
		"not kubelet": {name: "backup-2026-11-24T10:30:00Z.tar"},
		"keep marker": {name: "checkpoint-p_ns-c-2026-11-24T10:30:00Z.tar.keep"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := archive.TimeFromName(tc.name)
			if ok != tc.wantOK || !got.Equal(tc.want) {
				t.Errorf("TimeFromName(%q) = %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.wantOK)
			}
			if archive.IsArchiveName(tc.name) != tc.wantOK {
				t.Errorf("IsArchiveName(%q) = %v, want %v", tc.name, !tc.wantOK, tc.wantOK)
			}
		})
	}
}

func TestCacheReadsOnce(t *testing.T) {
	dir := t.TempDir()
	file := testarchive.New("shop", "cache-0", "redis").At(taken).MustWrite(dir)
	info, err := os.Lstat(file)
	if err != nil {
		t.Fatal(err)
	}
	c := archive.NewCache()
	v := archive.VersionOf(info)
	if _, cached, err := c.Get(file, v, archive.Limits{}); err != nil || cached {
		t.Fatalf("first Get: cached=%v err=%v; want a read", cached, err)
	}
	if _, cached, _ := c.Get(file, v, archive.Limits{}); !cached {
		t.Errorf("second Get of the same version read the archive again")
	}
	v.Size++
	if _, cached, _ := c.Get(file, v, archive.Limits{}); cached {
		t.Errorf("Get of a new version returned the cached result")
	}
}
