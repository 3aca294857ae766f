package nodeagent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/types"
)

func testRecord(i int, uid string) record {
	return record{Path: fmt.Sprintf("/var/lib/kubelet/checkpoints/checkpoint-db-%d_shop-redis-2026-12-04T10:00:00Z.tar", i),
		Namespace: "shop", Name: fmt.Sprintf("db-%d", i), UID: types.UID(uid), NamespaceUID: "ns-1", CRDUID: "crd-1", NodeUID: "node-1"}
}

// state is what a reader of the records sees: every archive's record.
func state(rs *records) map[string]record {
	out := map[string]record{}
	for _, p := range rs.paths() {
		out[p] = *rs.get(p)
	}
	return out
}

// close closes the log, as the end of the agent's process does.
func (rs *records) close() error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.log.Close()
}

func mustOpen(t *testing.T, dir string) (*records, []error) {
	t.Helper()
	rs, bad, err := openRecords(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.close() })
	return rs, bad
}

func logLines(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, logName))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

func TestRecordsOutliveTheAgent(t *testing.T) {
	dir := t.TempDir()
	rs, _ := mustOpen(t, dir)
	for i := range 5 {
		if err := rs.put(testRecord(i, "uid-a")); err != nil {
			t.Fatal(err)
		}
	}
	if err := rs.put(testRecord(1, "uid-b")); err != nil { // a newer Checkpoint for archive 1
		t.Fatal(err)
	}
	if err := rs.drop(testRecord(3, "").Path); err != nil {
		t.Fatal(err)
	}
	if err := rs.dropDurably(testRecord(4, "").Path); err != nil {
		t.Fatal(err)
	}
	want := state(rs)
	if len(want) != 3 || want[testRecord(1, "").Path].UID != "uid-b" {
		t.Fatalf("records before the restart: %v", want)
	}
	if err := rs.close(); err != nil {
		t.Fatal(err)
	}
	again, bad := mustOpen(t, dir)
	if len(bad) > 0 {
		t.Fatalf("unreadable records after a clean stop: %v", bad)
	}
	if diff := cmp.Diff(want, state(again)); diff != "" {
		t.Errorf("records after the restart (-before +after):\n%s", diff)
	}
	if n := len(logLines(t, dir)); n != 3 {
		t.Errorf("the log has %d lines after the start's compaction, want one per record (3)", n)
	}
}

// A crash of the node can leave the log's last line half written, or a line garbled. Each
// archive must then be left with an older record of its own, or none: never a record that
// was not its latest but for a drop that came after (docs/node-agent.md, "The protocol").
func TestRecordsAfterACrash(t *testing.T) {
	dir := t.TempDir()
	rs, _ := mustOpen(t, dir)
	for i := range 3 {
		if err := rs.put(testRecord(i, "uid-a")); err != nil {
			t.Fatal(err)
		}
	}
	if err := rs.put(testRecord(0, "uid-b")); err != nil {
		t.Fatal(err)
	}
	_ = rs.close()
	lines := logLines(t, dir)
	// The start compacted an empty log; the four puts follow.
	if len(lines) != 4 {
		t.Fatalf("log: %q", lines)
	}
	tests := map[string]struct {
		edit    func(lines []string) string
		wantBad int
		want    map[int]types.UID
	}{
		"the last line torn": {
			edit:    func(l []string) string { return strings.Join(l[:3], "\n") + "\n" + l[3][:len(l[3])/2] },
			wantBad: 1,
			want:    map[int]types.UID{0: "uid-a", 1: "uid-a", 2: "uid-a"},
		},
		"a line zeroed": {
			edit:    func(l []string) string { l[1] = strings.Repeat("\x00", len(l[1])); return strings.Join(l, "\n") + "\n" },
			wantBad: 1,
			want:    map[int]types.UID{0: "uid-b", 2: "uid-a"},
		},
		"the last line lost": {
			edit: func(l []string) string { return strings.Join(l[:3], "\n") + "\n" },
			want: map[int]types.UID{0: "uid-a", 1: "uid-a", 2: "uid-a"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			crashed := t.TempDir()
			if err := os.WriteFile(filepath.Join(crashed, logName), []byte(tc.edit(append([]string(nil), lines...))), 0o600); err != nil {
				t.Fatal(err)
			}
			rs, bad := mustOpen(t, crashed)
			if len(bad) != tc.wantBad {
				t.Errorf("%d unreadable lines reported (%v), want %d", len(bad), bad, tc.wantBad)
			}
			got := map[int]types.UID{}
			for i := range 3 {
				if rec := rs.get(testRecord(i, "").Path); rec != nil {
					got[i] = rec.UID
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			// Appending goes on after the damage, and the next start reads everything.
			if err := rs.put(testRecord(7, "uid-c")); err != nil {
				t.Fatal(err)
			}
			_ = rs.close()
			again, bad := mustOpen(t, crashed)
			if len(bad) > 0 {
				t.Errorf("unreadable lines after the restart: %v", bad)
			}
			if rec := again.get(testRecord(7, "").Path); rec == nil || rec.UID != "uid-c" {
				t.Errorf("the record written after the crash was lost: %v", rec)
			}
		})
	}
}

// Earlier agents kept a JSON file per record: they move into the log, and go only once the
// log holds them; one that cannot be read stays on disk.
func TestRecordsMoveFromFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		data, _ := json.Marshal(testRecord(i, "uid-a"))
		write(fmt.Sprintf("record-%d.json", i), data)
	}
	write("broken.json", []byte(`{"path":`))

	rs, bad := mustOpen(t, dir)
	if len(bad) != 1 || !strings.Contains(bad[0].Error(), "broken.json") {
		t.Errorf("reported %v, want the unreadable broken.json", bad)
	}
	if got := len(state(rs)); got != 2 {
		t.Errorf("%d records after the move, want 2", got)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if diff := cmp.Diff([]string{filepath.Join(dir, "broken.json")}, left); diff != "" {
		t.Errorf("files left after the move (-want +got):\n%s", diff)
	}

	// A file left by a move that a crash interrupted is older than the log: the log wins.
	if err := rs.drop(testRecord(0, "").Path); err != nil {
		t.Fatal(err)
	}
	_ = rs.close()
	data, _ := json.Marshal(testRecord(0, "uid-a"))
	write("record-0.json", data)
	again, _ := mustOpen(t, dir)
	if rec := again.get(testRecord(0, "").Path); rec != nil {
		t.Errorf("a leftover file brought back the record the log dropped: %+v", rec)
	}
	if _, err := os.Stat(filepath.Join(dir, "record-0.json")); !os.IsNotExist(err) {
		t.Errorf("the leftover file is still there: %v", err)
	}
}

func TestRecordsLogStaysShort(t *testing.T) {
	dir := t.TempDir()
	rs, _ := mustOpen(t, dir)
	for i := range 5000 {
		if err := rs.put(testRecord(i%10, fmt.Sprintf("uid-%d", i))); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			if err := rs.drop(testRecord(i%10, "").Path); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := state(rs)
	if n := len(logLines(t, dir)); n > 2*len(want)+1024+1 {
		t.Errorf("the log has %d lines for %d records", n, len(want))
	}
	_ = rs.close()
	again, bad := mustOpen(t, dir)
	if len(bad) > 0 {
		t.Fatal(bad)
	}
	if diff := cmp.Diff(want, state(again)); diff != "" {
		t.Errorf("records after compactions and a restart (-want +got):\n%s", diff)
	}
}

// Dropping the record of an orphan leaves a placeholder with its orphanOf, which outlives
// a restart and goes only when the agent removes the file.
func TestRecordsKeepOrphanOf(t *testing.T) {
	dir := t.TempDir()
	rs, _ := mustOpen(t, dir)
	orphan, plain := testRecord(0, "uid-a"), testRecord(1, "uid-b")
	orphan.OrphanOf = "shop"
	for _, rec := range []record{orphan, plain} {
		if err := rs.put(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := rs.drop(orphan.Path); err != nil {
		t.Fatal(err)
	}
	if err := rs.dropDurably(plain.Path); err != nil {
		t.Fatal(err)
	}
	want := map[string]record{orphan.Path: {Path: orphan.Path, OrphanOf: "shop"}}
	if diff := cmp.Diff(want, state(rs)); diff != "" {
		t.Errorf("records after the drops (-want +got):\n%s", diff)
	}
	// Dropped again, a placeholder stays as it is.
	if err := rs.dropDurably(orphan.Path); err != nil {
		t.Fatal(err)
	}
	_ = rs.close()
	again, bad := mustOpen(t, dir)
	if len(bad) > 0 {
		t.Fatal(bad)
	}
	if diff := cmp.Diff(want, state(again)); diff != "" {
		t.Errorf("records after a restart (-want +got):\n%s", diff)
	}
	if rec := again.get(orphan.Path); !rec.placeholder() {
		t.Errorf("the placeholder names a Checkpoint: %+v", rec)
	}
	if err := again.dropRemoved(orphan.Path); err != nil {
		t.Fatal(err)
	}
	_ = again.close()
	last, _ := mustOpen(t, dir)
	if diff := cmp.Diff(map[string]record{}, state(last)); diff != "" {
		t.Errorf("records after the file was removed (-want +got):\n%s", diff)
	}
}

// A compaction that renamed the new log into place but could not open it leaves the
// records broken, so that the next change is not written to the old, unlinked log.
func TestRecordsReopenFailure(t *testing.T) {
	dir := t.TempDir()
	rs, _ := mustOpen(t, dir)
	if err := rs.put(testRecord(0, "uid-a")); err != nil {
		t.Fatal(err)
	}
	rs.openLog = func(string, int, os.FileMode) (*os.File, error) { return nil, syscall.EMFILE }
	rs.mu.Lock()
	err := rs.compact()
	rs.mu.Unlock()
	if !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("compact: %v, want EMFILE", err)
	}
	rs.openLog = os.OpenFile
	if err := rs.put(testRecord(1, "uid-b")); err != nil {
		t.Fatal(err)
	}
	if err := rs.drop(testRecord(0, "").Path); err != nil {
		t.Fatal(err)
	}
	want := state(rs)
	_ = rs.close()
	again, _ := mustOpen(t, dir)
	if diff := cmp.Diff(want, state(again)); diff != "" {
		t.Errorf("records after a restart (-want +got):\n%s", diff)
	}
}
