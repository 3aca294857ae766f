package archive_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
)

// BenchmarkReadIdentity reads the identity of every archive in a directory with a warm
// page cache, and reports the time per archive and the bytes read per archive: the
// latter must not grow with the archive's size.
func BenchmarkReadIdentity(b *testing.B) {
	cases := []struct {
		count int
		size  int64
	}{
		{count: 1000, size: 64 << 10},
		{count: 10000, size: 64 << 10},
		{count: 1, size: 1 << 30},
	}
	for _, tc := range cases {
		b.Run(fmt.Sprintf("%dx%s", tc.count, sizeName(tc.size)), func(b *testing.B) {
			dir := b.TempDir()
			taken := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
			paths := make([]string, 0, tc.count)
			for i := range tc.count {
				a := testarchive.New("bench", fmt.Sprintf("pod-%05d", i), "app").At(taken).WithSize(tc.size)
				if i%2 == 1 {
					a.WithRuntime(testarchive.Containerd)
				}
				paths = append(paths, a.MustWrite(dir))
			}
			readAll(b, paths) // warm the page cache for what is read
			b.ResetTimer()
			var bytesRead int64
			var elapsed time.Duration
			for b.Loop() {
				start := time.Now()
				bytesRead = readAll(b, paths)
				elapsed += time.Since(start)
			}
			b.StopTimer()
			perArchive := float64(bytesRead) / float64(tc.count)
			b.ReportMetric(perArchive, "bytes-read/archive")
			b.ReportMetric(float64(elapsed.Microseconds())/float64(b.N)/float64(tc.count), "µs/archive")
			// The agent reads with its workers in parallel: the same directory, one reader per CPU.
			start := time.Now()
			readParallel(b, paths, runtime.GOMAXPROCS(0))
			parallel := time.Since(start)
			b.ReportMetric(parallel.Seconds(), "s-parallel")
			b.Logf("%d archives of %s: read identities in %v (%.1f µs each), %v with %d readers; %.0f bytes read per archive",
				tc.count, sizeName(tc.size), elapsed/time.Duration(b.N), float64(elapsed.Microseconds())/float64(b.N)/float64(tc.count),
				parallel, runtime.GOMAXPROCS(0), perArchive)
			// The archives are large; do not wait for the end of the run to free the disk.
			_ = os.RemoveAll(filepath.Clean(dir))
		})
	}
}

func readAll(b *testing.B, paths []string) int64 {
	var total int64
	for _, p := range paths {
		res, err := archive.Read(p, archive.Limits{})
		if err != nil {
			b.Fatalf("reading %s: %v", p, err)
		}
		total += res.BytesRead
	}
	return total
}

func readParallel(b *testing.B, paths []string, readers int) {
	var wg sync.WaitGroup
	next := make(chan string)
	for range readers {
		wg.Go(func() {
			for p := range next {
				if _, err := archive.Read(p, archive.Limits{}); err != nil {
					b.Errorf("reading %s: %v", p, err)
				}
			}
		})
	}
	for _, p := range paths {
		next <- p
	}
	close(next)
	wg.Wait()
}

func sizeName(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%dGiB", n>>30)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}
