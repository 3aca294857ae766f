package nodeagent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// The copy book says which archives are copies from before their file is in place, through
// a restart, and forgets a copy once its file is gone, but not while it is being fetched.
func TestCopyBook(t *testing.T) {
	state, dir := t.TempDir(), t.TempDir()
	path := filepath.Join(dir, "checkpoint-web-0_shop-app-2026-12-07T20:00:00Z.tar")
	of := cqv1.ArchiveCopy{Namespace: "shop", Name: "stored", UID: "uid-1", NodeName: "node-a"}
	b, err := openCopies(state)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.begin(copyEntry{Path: path, Size: 5, CopyOf: of}); err != nil {
		t.Fatal(err)
	}
	must(t, b.forget(path)) // a reconcile of the path before the link: the entry stays
	if diff := cmp.Diff(&of, b.of(path, 5)); diff != "" {
		t.Errorf("while fetching (-want +got):\n%s", diff)
	}
	must(t, os.WriteFile(path, []byte("12345"), 0o600))
	b.done(path, true)
	if got := b.of(path, 6); got != nil {
		t.Errorf("a file of another size is a copy: %v", got)
	}

	again, err := openCopies(state)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&of, again.of(path, 5)); diff != "" {
		t.Errorf("after a restart (-want +got):\n%s", diff)
	}
	must(t, os.Remove(path))
	must(t, again.forget(path))
	if got := again.of(path, 5); got != nil {
		t.Errorf("a copy whose file went is still one: %v", got)
	}

	// A fetch cut short before its link: the entry is dropped at the next start.
	must(t, again.begin(copyEntry{Path: path, Size: 5, CopyOf: of}))
	last, err := openCopies(state)
	if err != nil {
		t.Fatal(err)
	}
	if got := last.of(path, 5); got != nil {
		t.Errorf("an entry without its file survived a restart: %v", got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
