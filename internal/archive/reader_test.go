package archive_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
)

// taken is the kubelet's time; the runtime's is RuntimeDelay later.
var (
	taken   = time.Date(2026, 11, 24, 10, 30, 0, 0, time.UTC)
	stamped = taken.Add(testarchive.RuntimeDelay)
	cet     = time.FixedZone("CET", 3600)
)

func TestReadIdentity(t *testing.T) {
	tests := map[string]struct {
		archive *testarchive.Archive
		want    archive.Identity
	}{
		"names with dashes that make the file name ambiguous": {
			archive: testarchive.New("team-prod", "web-7f9c", "nginx-proxy").WithUID("uid-2"),
			want:    archive.Identity{Namespace: "team-prod", Pod: "web-7f9c", PodUID: "uid-2", Container: "nginx-proxy"},
		},
		"a node in local time": {
			archive: testarchive.New("shop", "cache-0", "redis").WithUID("uid-1").InZone(cet),
			want:    archive.Identity{Namespace: "shop", Pod: "cache-0", PodUID: "uid-1", Container: "redis"},
		},
		"rootfs diff, 1 MiB": {
			archive: testarchive.New("shop", "cache-0", "redis").WithUID("uid-1").WithRootfsDiff().WithSize(1 << 20),
			want:    archive.Identity{Namespace: "shop", Pod: "cache-0", PodUID: "uid-1", Container: "redis"},
		},
		"pod annotations that name another namespace": {
			archive: testarchive.New("tenant", "forger", "app").WithUID("uid-4").WithPodAnnotations(withoutManager(forgery("victim"))),
			want:    archive.Identity{Namespace: "tenant", Pod: "forger", PodUID: "uid-4", Container: "app"},
		},
		"only sandbox-namespace forged": {
			archive: testarchive.New("tenant", "forger", "app").WithUID("uid-4").
				WithPodAnnotations(map[string]string{"io.kubernetes.cri.sandbox-namespace": "victim"}),
			want: archive.Identity{Namespace: "tenant", Pod: "forger", PodUID: "uid-4", Container: "app"},
		},
	}
	for name, tc := range tests {
		for _, rt := range testarchive.Runtimes {
			t.Run(name+"/"+string(rt), func(t *testing.T) {
				a := *tc.archive
				a.WithRuntime(rt).At(taken).WithImage("redis:7", "docker.io/library/redis:7")
				file := a.MustWrite(t.TempDir())
				res, err := archive.Read(file, archive.Limits{})
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
				want := tc.want
				// CRI-O's name for the image is the pod's, fully qualified (TestReadImage).
				want.Image, want.Runtime = map[bool]string{true: "docker.io/library/redis:7", false: "redis:7"}[rt == testarchive.CRIO], rt.RuntimeName()
				want.CheckpointTime, want.TimeSource = stamped, archive.TimeFromArchive
				if diff := cmp.Diff(want, res.Identity); diff != "" {
					t.Errorf("identity (-want +got):\n%s", diff)
				}
				if res.BytesRead > 48<<10 {
					t.Errorf("read %d bytes of a %d-byte archive; want only headers and metadata (under 48 KiB)", res.BytesRead, a.Size)
				}
			})
		}
	}
}

// forgery is what a pod's author writes to have its archives charged to namespace: every
// identity key of every runtime.
func forgery(namespace string) map[string]string {
	return map[string]string{
		"io.kubernetes.cri.sandbox-namespace": namespace,
		"io.kubernetes.cri.sandbox-name":      "victim-0",
		"io.kubernetes.cri.sandbox-uid":       "victim-uid",
		"io.kubernetes.cri.container-name":    "app",
		"io.kubernetes.cri.container-type":    "container",
		"io.kubernetes.cri.image-name":        "victim:latest",
		"io.container.manager":                "cri-o",
		"io.kubernetes.cri-o.Labels":          `{"io.kubernetes.container.name":"app","io.kubernetes.pod.name":"victim-0","io.kubernetes.pod.namespace":"` + namespace + `","io.kubernetes.pod.uid":"victim-uid"}`,
		"io.kubernetes.pod.namespace":         namespace,
		"io.kubernetes.pod.name":              "victim-0",
		"io.kubernetes.pod.uid":               "victim-uid",
		"io.kubernetes.container.name":        "app",
		"io.kubernetes.cri-o.Image":           "victim:latest",
	}
}

// withoutManager drops io.container.manager from a forgery: passed through by containerd,
// it makes the reader take the archive for CRI-O's, which TestReadIdentityMismatch covers.
func withoutManager(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if k != "io.container.manager" {
			out[k] = v
		}
	}
	return out
}

// TestReadIdentityMismatch covers identities that a witness contradicts: none is charged
// to any namespace.
func TestReadIdentityMismatch(t *testing.T) {
	tests := map[string]struct {
		archive *testarchive.Archive
		runtime []testarchive.Runtime
	}{
		// containerd passes the pod's CRI-O keys through and the reader believes
		// io.container.manager; config.dump's name and the file name are containerd's
		// and the kubelet's, of the real pod.
		"containerd passing a CRI-O forgery through": {
			archive: testarchive.New("tenant", "forger", "app").WithPodAnnotations(forgery("victim")),
			runtime: []testarchive.Runtime{testarchive.Containerd20, testarchive.Containerd},
		},
		"file renamed to another namespace": {
			archive: testarchive.New("tenant", "forger", "app").Named("checkpoint-forger_victim-app-2026-11-24T10:30:00Z.tar"),
			runtime: testarchive.Runtimes,
		},
		"file renamed to another pod": {
			archive: testarchive.New("tenant", "forger", "app").Named("checkpoint-other_tenant-app-2026-11-24T10:30:00Z.tar"),
			runtime: testarchive.Runtimes,
		},
		"no time in the file name": {
			archive: testarchive.New("tenant", "forger", "app").Named("checkpoint-forger_tenant-app-yesterday.tar"),
			runtime: testarchive.Runtimes,
		},
		"two config.dump entries": {
			archive: testarchive.New("tenant", "forger", "app").Damaged(testarchive.TwoConfigDumps),
			runtime: testarchive.Runtimes,
		},
	}
	for name, tc := range tests {
		for _, rt := range tc.runtime {
			t.Run(name+"/"+string(rt), func(t *testing.T) {
				a := *tc.archive
				a.WithRuntime(rt).At(taken)
				res, err := archive.Read(a.MustWrite(t.TempDir()), archive.Limits{})
				if got := archive.ReasonOf(err); err == nil || got != archive.ReasonIdentityMismatch {
					t.Fatalf("Read: reason %s (%v), want %s", got, err, archive.ReasonIdentityMismatch)
				}
				id := res.Identity
				if id.Namespace != "" || id.Pod != "" || id.PodUID != "" || id.Container != "" {
					t.Errorf("identity %+v, want no namespace, pod or container", id)
				}
			})
		}
	}
}

func TestNameMatches(t *testing.T) {
	id := archive.Identity{Namespace: "team", Pod: "web-0", Container: "prod-app"}
	tests := map[string]bool{
		"checkpoint-web-0_team-prod-app-2026-11-24T10:30:00Z.tar":      true,
		"checkpoint-web-0_team-prod-app-2026-11-24T11:30:00+01:00.tar": true,
		archive.KubeletFileName("web-0", "team", "prod-app", taken):    true,
		"checkpoint-web-0_team-prod-app-2026-11-24T10:30:00Z.tar.keep": false,
		"checkpoint-web-0_team-prod-app-2026-11-24.tar":                false,
		"checkpoint-web-0_team-prod-app--2026-11-24T10:30:00Z.tar":     false,
		"checkpoint-web-0_team-prod-2026-11-24T10:30:00Z.tar":          false,
		"checkpoint-web-1_team-prod-app-2026-11-24T10:30:00Z.tar":      false,
	}
	for name, want := range tests {
		if got := archive.NameMatches(id, name); got != want {
			t.Errorf("NameMatches(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestReadBroken(t *testing.T) {
	tests := map[testarchive.Broken]struct {
		reason archive.Reason
		// namespace says the identity survives the damage, so the archive is published
		// (with the Unreadable condition) in its own namespace.
		namespace bool
	}{
		testarchive.Truncated:      {archive.ReasonTruncated, true},
		testarchive.NotTar:         {archive.ReasonNotTar, false},
		testarchive.NoIdentity:     {archive.ReasonNoIdentity, false},
		testarchive.HugeSpec:       {archive.ReasonMetadataTooLarge, false},
		testarchive.Symlink:        {archive.ReasonNotRegular, false},
		testarchive.Directory:      {archive.ReasonNotRegular, false},
		testarchive.DotDotEntry:    {archive.ReasonUnexpectedEntry, true},
		testarchive.AbsoluteEntry:  {archive.ReasonUnexpectedEntry, true},
		testarchive.HardLink:       {archive.ReasonUnexpectedEntry, true},
		testarchive.DeviceEntry:    {archive.ReasonUnexpectedEntry, true},
		testarchive.OversizedEntry: {archive.ReasonTruncated, false},
		testarchive.TwoConfigDumps: {archive.ReasonIdentityMismatch, false},
		testarchive.HugeAnnotation: {archive.ReasonMetadataTooLarge, false},
		testarchive.NonUTF8:        {archive.ReasonBadMetadata, false},
		testarchive.TarInSpecDump:  {archive.ReasonBadMetadata, false},
	}
	for broken, want := range tests {
		for _, rt := range testarchive.Runtimes {
			t.Run(string(broken)+"/"+string(rt), func(t *testing.T) {
				a := testarchive.New("shop", "cache-0", "redis").WithRuntime(rt).At(taken).Damaged(broken)
				if broken == testarchive.OversizedEntry && rt != testarchive.CRIO {
					t.Skip("the pages come before the metadata only in CRI-O's layout")
				}
				file := a.MustWrite(t.TempDir())
				if broken == testarchive.Symlink {
					target, _ := os.Readlink(file)
					t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(target)) })
				}
				res, err := archive.Read(file, archive.Limits{})
				if err == nil {
					t.Fatalf("Read returned identity %+v, want a %s error", res.Identity, want.reason)
				}
				if got := archive.ReasonOf(err); got != want.reason {
					t.Errorf("reason = %s, want %s (error: %v)", got, want.reason, err)
				}
				wantNS := map[bool]string{true: "shop"}[want.namespace]
				if broken == testarchive.Truncated && rt == testarchive.Containerd20 {
					wantNS = "" // the cut falls in spec.dump, the last entry
				}
				if res.Identity.Namespace != wantNS {
					t.Errorf("namespace %q, want %q", res.Identity.Namespace, wantNS)
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
		// Found by FuzzFileName: a path is not an archive's base name, whatever it ends with.
		"slash": {name: "checkpoint-/_0-0-0000-01-01T00:00:00Z.tar"},
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

// TestEnded tells a finished archive from one whose writer has not written tar's
// end-of-archive marker yet, whatever the cut: at an entry's end, inside the marker.
func TestEnded(t *testing.T) {
	for _, rt := range testarchive.Runtimes {
		file := testarchive.New("shop", "cache-0", "redis").WithRuntime(rt).At(taken).MustWrite(t.TempDir())
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		tests := map[string]struct {
			size      int
			wantEnded bool
		}{
			"whole":                 {len(data), true},
			"before the marker":     {len(data) - 1024, false},
			"inside the marker":     {len(data) - 512, false},
			"inside the last entry": {len(data) - 1024 - 100, false},
		}
		for name, tc := range tests {
			t.Run(string(rt)+"/"+name, func(t *testing.T) {
				res, _ := archive.ReadFrom(bytes.NewReader(data[:tc.size]), int64(tc.size), filepath.Base(file), taken, archive.Limits{})
				if res.Ended != tc.wantEnded {
					t.Errorf("Ended = %v, want %v", res.Ended, tc.wantEnded)
				}
			})
		}
	}
}
