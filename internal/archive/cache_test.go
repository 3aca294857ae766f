package archive_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
)

// A read that failed for the operating system's reasons is not remembered: the next Get
// of the same version reads the archive again.
func TestCacheReadsAgainAfterAnIOError(t *testing.T) {
	dir := t.TempDir()
	a := testarchive.New("shop", "cache-0", "redis")
	file := a.MustWrite(dir)
	info, err := os.Lstat(file)
	if err != nil {
		t.Fatal(err)
	}
	v := archive.VersionOf(info)
	// The archive is out of reach for a moment, as with EIO or a mount briefly gone.
	away := filepath.Join(t.TempDir(), a.FileName())
	if err := os.Rename(file, away); err != nil {
		t.Fatal(err)
	}
	c := archive.NewCache()
	if _, _, err := c.Get(file, v, archive.Limits{}); archive.ReasonOf(err) != archive.ReasonIO {
		t.Fatalf("reading a missing archive: %v, want %s", err, archive.ReasonIO)
	}
	if err := os.Rename(away, file); err != nil {
		t.Fatal(err)
	}
	res, cached, err := c.Get(file, v, archive.Limits{})
	if err != nil || cached {
		t.Fatalf("the same version again: cached %v, error %v; want a new read that succeeds", cached, err)
	}
	if res.Identity.Namespace != "shop" {
		t.Errorf("namespace %q, want shop", res.Identity.Namespace)
	}
	if _, cached, _ := c.Get(file, v, archive.Limits{}); !cached {
		t.Error("a successful read was not remembered")
	}
}
