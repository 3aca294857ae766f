package nodeagent

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/controller-runtime/pkg/event"

	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
)

// TestRescanEnqueuesOnlyChanges checks that a rescan of an unchanged directory enqueues
// nothing (so it costs one stat per file and no reconcile), and that it enqueues exactly
// what was added, changed, pinned or removed since the previous scan.
func TestRescanEnqueuesOnlyChanges(t *testing.T) {
	dir := t.TempDir()
	taken := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	a := testarchive.New("shop", "a", "c").At(taken).MustWrite(dir)
	b := testarchive.New("shop", "b", "c").At(taken).MustWrite(dir)
	c := testarchive.New("shop", "c", "c").At(taken).MustWrite(dir)
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not an archive"), 0o600); err != nil {
		t.Fatal(err)
	}
	events := make(chan event.TypedGenericEvent[fileKey], 100)
	cfg, err := Config{NodeName: "n", Dirs: []string{dir}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	w := &watcher{cfg: cfg, events: events, log: logr.Discard(), seen: map[fileKey]scanned{}, missing: map[string]bool{}}
	ctx := context.Background()

	w.scan(ctx)
	if diff := cmp.Diff([]string{a, b, c}, drain(events)); diff != "" {
		t.Errorf("first scan (-want +got):\n%s", diff)
	}
	w.scan(ctx)
	if got := drain(events); len(got) != 0 {
		t.Errorf("a rescan of an unchanged directory enqueued %v", got)
	}

	if err := os.Chtimes(a, taken.Add(time.Minute), taken.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b+".keep", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(c); err != nil {
		t.Fatal(err)
	}
	d := testarchive.New("shop", "d", "c").At(taken).MustWrite(dir)
	w.scan(ctx)
	if diff := cmp.Diff([]string{a, b, c, d}, drain(events)); diff != "" {
		t.Errorf("rescan after changes (-want +got):\n%s", diff)
	}
}

func drain(events chan event.TypedGenericEvent[fileKey]) []string {
	var out []string
	for {
		select {
		case e := <-events:
			out = append(out, e.Object.Path())
		default:
			sort.Strings(out)
			return out
		}
	}
}

func TestArchiveKeyOf(t *testing.T) {
	const archive = "checkpoint-p_ns-c-2026-11-24T10:30:00Z.tar"
	tests := map[string]struct {
		path   string
		want   fileKey
		wantOK bool
	}{
		"archive":      {path: "/ckpt/" + archive, want: fileKey{Dir: "/ckpt", Name: archive}, wantOK: true},
		"keep marker":  {path: "/ckpt/" + archive + ".keep", want: fileKey{Dir: "/ckpt", Name: archive}, wantOK: true},
		"other file":   {path: "/ckpt/notes.txt"},
		"partial copy": {path: "/ckpt/" + archive + ".part"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := archiveKeyOf(tc.path)
			if ok != tc.wantOK || got != tc.want {
				t.Errorf("archiveKeyOf(%q) = %+v, %v; want %+v, %v", tc.path, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
