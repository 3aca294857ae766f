package nodeagent

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/types"
)

// openTestOffloader opens the record of stored archives in dir as the agent does at start.
func openTestOffloader(t *testing.T, dir string) (*Offloader, error) {
	t.Helper()
	o := &Offloader{Config: Config{StateDir: dir}, stored: map[types.NamespacedName]storedObject{}}
	return o, o.openStored()
}

// storedKeys are the Checkpoints o knows to be stored, with their objects' keys.
func storedKeys(o *Offloader) map[string]string {
	out := map[string]string{}
	for k, so := range o.stored {
		out[k.String()] = so.location.Key
	}
	return out
}

func forget(o *Offloader, i int) {
	c := storedCheckpoint(i)
	k := types.NamespacedName{Namespace: c.Namespace, Name: c.Name}
	o.mu.Lock()
	delete(o.stored, k)
	o.storedChanged(k)
	o.mu.Unlock()
}

func TestStoredOutlivesTheAgent(t *testing.T) {
	dir := t.TempDir()
	o, err := openTestOffloader(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		o.remember(storedCheckpoint(i))
	}
	forget(o, 1)
	want := storedKeys(o)
	if len(want) != 2 {
		t.Fatalf("stored before the restart: %v, want 2", want)
	}
	again, err := openTestOffloader(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, storedKeys(again)); diff != "" {
		t.Errorf("stored after a restart (-want +got):\n%s", diff)
	}
	if got := again.stored[types.NamespacedName{Namespace: "shop", Name: storedCheckpoint(2).Name}]; got.archive == nil || got.archive.PodName != "cache-2" {
		t.Errorf("the archive of an entry after a restart: %+v, want the Checkpoint's spec.archive (to publish it again as an orphan)", got.archive)
	}
}

// Recording one more archive writes one line, whatever the node stored before: an agent
// that rewrote its whole record for each archive wrote 0.5 MB here.
func TestStoredChangeWritesOneLine(t *testing.T) {
	dir := t.TempDir()
	o, err := openTestOffloader(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		o.remember(storedCheckpoint(i))
	}
	before := wchar(t)
	o.remember(storedCheckpoint(1000))
	if w := wchar(t) - before; w > 2048 {
		t.Errorf("recording the 1,001st stored archive wrote %d bytes, want one line (under 2 KiB)", w)
	}
	before = wchar(t)
	forget(o, 3)
	if w := wchar(t) - before; w > 2048 {
		t.Errorf("forgetting a stored archive among 1,001 wrote %d bytes, want one line (under 2 KiB)", w)
	}
}

// An agent of session 6 or before kept stored.json; the first start after it moves its
// entries into the log, and only then removes the file.
func TestStoredMovesFromJSON(t *testing.T) {
	dir := t.TempDir()
	var entries []storedEntry
	for i := range 2 {
		c := storedCheckpoint(i)
		entries = append(entries, *entryOf(types.NamespacedName{Namespace: c.Namespace, Name: c.Name},
			storedObject{uid: c.UID, location: *c.Status.Location, archive: c.Spec.Archive}))
	}
	if err := saveJSON(dir, storedFile, entries); err != nil {
		t.Fatal(err)
	}
	o, err := openTestOffloader(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"shop/" + storedCheckpoint(0).Name: storedCheckpoint(0).Status.Location.Key,
		"shop/" + storedCheckpoint(1).Name: storedCheckpoint(1).Status.Location.Key,
	}
	if diff := cmp.Diff(want, storedKeys(o)); diff != "" {
		t.Errorf("stored from stored.json (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, storedFile)); !os.IsNotExist(err) {
		t.Errorf("stored.json after the move: %v, want it removed", err)
	}
	again, err := openTestOffloader(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, storedKeys(again)); diff != "" {
		t.Errorf("stored after a second start (-want +got):\n%s", diff)
	}
}

// A stored.json left beside the log (a crash between writing the log and removing the
// file) is older than the log: the log wins and the file goes.
func TestStoredLogWinsOverJSON(t *testing.T) {
	dir := t.TempDir()
	o, err := openTestOffloader(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	o.remember(storedCheckpoint(0))
	c := storedCheckpoint(1)
	old := []storedEntry{*entryOf(types.NamespacedName{Namespace: c.Namespace, Name: c.Name},
		storedObject{uid: c.UID, location: *c.Status.Location})}
	if err := saveJSON(dir, storedFile, old); err != nil {
		t.Fatal(err)
	}
	again, err := openTestOffloader(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"shop/" + storedCheckpoint(0).Name: storedCheckpoint(0).Status.Location.Key}
	if diff := cmp.Diff(want, storedKeys(again)); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, storedFile)); !os.IsNotExist(err) {
		t.Errorf("stored.json beside the log: %v, want it removed", err)
	}
}

// A torn last line (the node lost power in the middle of a write) is reported and
// skipped; the entries before it stay.
func TestStoredTornLine(t *testing.T) {
	dir := t.TempDir()
	o, err := openTestOffloader(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	o.remember(storedCheckpoint(0))
	o.remember(storedCheckpoint(1))
	path := filepath.Join(dir, storedLogName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	last := bytes.LastIndexByte(data[:len(data)-1], '\n')
	if err := os.WriteFile(path, data[:last+20], 0o600); err != nil {
		t.Fatal(err)
	}
	again, err := openTestOffloader(t, dir)
	if err == nil {
		t.Error("opening a log with a torn line: no error, want it reported")
	}
	want := map[string]string{"shop/" + storedCheckpoint(0).Name: storedCheckpoint(0).Status.Location.Key}
	if diff := cmp.Diff(want, storedKeys(again)); diff != "" {
		t.Errorf("stored after a torn line (-want +got):\n%s", diff)
	}
	// The start compacted the log: the next change is not written after the torn line.
	again.remember(storedCheckpoint(2))
	third, err := openTestOffloader(t, dir)
	if err != nil {
		t.Fatalf("opening the log after the torn line was compacted away: %v", err)
	}
	if len(third.stored) != 2 {
		t.Errorf("stored after the next change: %v, want 2", storedKeys(third))
	}
}

// Archives stored and forgotten without end keep the log short.
func TestStoredLogStaysShort(t *testing.T) {
	dir := t.TempDir()
	o, err := openTestOffloader(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1500 {
		o.remember(storedCheckpoint(i))
		forget(o, i)
	}
	if o.storedLog.lines > 1024+2 {
		t.Errorf("the log holds %d lines for %d archives stored, want at most 1,026", o.storedLog.lines, len(o.stored))
	}
}
