package archive_test

import (
	"os"
	"testing"

	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
)

// TestRealArchives reads archives that real runtimes wrote, each with the record of the pod
// it came from (test/archive's PodRecord, <archive>.pod.json), and fails on any difference
// between what the reader says and the pod: CHECKPOINT_REAL_ARCHIVES=<dir> go test
// ./internal/archive -run TestRealArchives. Skipped without the variable: the archives hold
// every memory page of their containers and live on the node that made them.
func TestRealArchives(t *testing.T) {
	dir := os.Getenv("CHECKPOINT_REAL_ARCHIVES")
	if dir == "" {
		t.Skip("CHECKPOINT_REAL_ARCHIVES is not set")
	}
	got, err := testarchive.CompareRecorded(dir, archive.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for name, diffs := range got {
		for _, d := range diffs {
			t.Errorf("%s: %s", name, d)
		}
		if len(diffs) == 0 {
			t.Logf("%s: as the pod", name)
		}
	}
}
