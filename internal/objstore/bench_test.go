package objstore_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/types"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/objstore"
	"github.com/checkpoint-quota/checkpoint-quota/test/s3server"
)

// TestThroughput measures what docs/offload.md reports: one agent's uploads per second of
// small archives, MB/s of a 1 GiB archive, and the process's peak memory (VmHWM, reset
// before the upload) over what it held before, with the agent's part size (16 MiB). It
// writes real files and runs the real S3 server on this machine, so it runs only with
// OFFLOAD_BENCH=1: `OFFLOAD_BENCH=1 go test ./internal/objstore/ -run Throughput -v`.
func TestThroughput(t *testing.T) {
	if os.Getenv("OFFLOAD_BENCH") == "" {
		t.Skip("set OFFLOAD_BENCH=1 to measure offload throughput and memory")
	}
	ctx := context.Background()
	srv, err := s3server.Start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	if err := srv.MakeBucket(ctx, "bench"); err != nil {
		t.Fatal(err)
	}
	st, err := objstore.New(objstore.Config{
		Spec:        cqv1.CheckpointStoreSpec{Endpoint: srv.Endpoint, Bucket: "bench"},
		AccessKeyID: s3server.AccessKeyID, SecretAccessKey: s3server.SecretAccessKey})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	small := make([]*os.File, 50)
	for i := range small {
		small[i] = randomFile(t, dir, fmt.Sprintf("small-%d.tar", i), 1<<20)
	}
	// SeaweedFS grows its volumes on the first writes to a bucket: the first ten uploads of
	// 1 MiB took 0.9 s each on this machine, the next ones 22 ms. The figures are of a store
	// that has run a while: it takes 20 uploads first, untimed.
	for i := range 20 {
		warm := randomFile(t, dir, fmt.Sprintf("warm-%d.tar", i), 1<<20)
		if _, err := st.Upload(ctx, fmt.Sprintf("warm/%d.tar", i), objstore.Archive{File: warm, Size: 1 << 20, UID: "warm"}); err != nil {
			t.Fatal(err)
		}
	}
	upload := func(i int, f *os.File) error {
		if _, err := f.Seek(0, io.SeekStart); err != nil { // the uploader before session 5 read from the offset
			return err
		}
		_, err := st.Upload(ctx, fmt.Sprintf("small/%d.tar", i), objstore.Archive{File: f, Size: 1 << 20, UID: types.UID(fmt.Sprint(i))})
		return err
	}
	// The store's own limit: one plain PUT of each file by the same client, its body
	// neither hashed by the client nor checked by the store (UNSIGNED-PAYLOAD): the least
	// work per byte an upload can ask of both.
	plain := func(i int, f *os.File) error {
		_, err := srv.Client.PutObject(ctx, "bench", fmt.Sprintf("plain/%d.tar", i), io.NewSectionReader(f, 0, 1<<20), 1<<20,
			minio.PutObjectOptions{DisableContentSha256: true})
		return err
	}
	// The same PUTs with the SHA-256 checksum that the uploader has the store compute and
	// check (the sums computed before, untimed): what verifying costs the store alone.
	sums := make([]string, len(small))
	for i, f := range small {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<20)); err != nil {
			t.Fatal(err)
		}
		sums[i] = base64.StdEncoding.EncodeToString(h.Sum(nil))
	}
	checked := func(i int, f *os.File) error {
		_, err := (minio.Core{Client: srv.Client}).PutObject(ctx, "bench", fmt.Sprintf("checked/%d.tar", i), io.NewSectionReader(f, 0, 1<<20), 1<<20, "", "",
			minio.PutObjectOptions{DisableContentSha256: true, UserMetadata: map[string]string{"x-amz-checksum-sha256": sums[i]}})
		return err
	}
	for _, inFlight := range []int{1, 2, 4} {
		for _, run := range []struct {
			what string
			put  func(int, *os.File) error
		}{{"the uploader", upload}, {"the store alone (plain PUTs)", plain}, {"the store alone (plain PUTs with their SHA-256 checksum)", checked}} {
			cpu0, start := cpuTime(), time.Now()
			if err := inParallel(small, inFlight, run.put); err != nil {
				t.Fatal(err)
			}
			wall := time.Since(start)
			t.Logf("50 archives of 1 MiB, %d in flight, %s: %.1f uploads/s, %.2f s wall, %.2f s CPU of this process",
				inFlight, run.what, 50/wall.Seconds(), wall.Seconds(), (cpuTime() - cpu0).Seconds())
		}
	}

	big := randomFile(t, dir, "big.tar", 1<<30)
	runtime.GC()
	idle := vmRSS(t)
	resetPeak(t)
	cpu0, start := cpuTime(), time.Now()
	if _, err := big.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Upload(ctx, "big.tar", objstore.Archive{File: big, Size: 1 << 30, UID: "big"}); err != nil {
		t.Fatal(err)
	}
	wall := time.Since(start)
	peak := vmHWM(t)
	t.Logf("1 GiB archive, the uploader: %.1f MB/s, %.2f s wall, %.2f s CPU; RSS before %d MiB, peak during %d MiB: %+d MiB over idle",
		float64(1<<30)/1e6/wall.Seconds(), wall.Seconds(), (cpuTime() - cpu0).Seconds(), idle>>20, peak>>20, (peak-idle)>>20)
	// The store's own limit for a large object: minio-go's multipart PUT of the same file
	// (16 MiB parts, unsigned bodies), one part at a time and two at a time.
	for _, threads := range []uint{1, 2} {
		cpu0, start = cpuTime(), time.Now()
		if _, err := srv.Client.PutObject(ctx, "bench", "plain/big.tar", io.NewSectionReader(big, 0, 1<<30), 1<<30,
			minio.PutObjectOptions{PartSize: 16 << 20, NumThreads: threads, DisableContentSha256: true}); err != nil {
			t.Fatal(err)
		}
		wall = time.Since(start)
		t.Logf("the store alone, one plain multipart PUT of 1 GiB, %d part(s) at a time: %.1f MB/s, %.2f s wall, %.2f s CPU",
			threads, float64(1<<30)/1e6/wall.Seconds(), wall.Seconds(), (cpuTime() - cpu0).Seconds())
	}
	if peak-idle > 64<<20 {
		t.Errorf("the upload of 1 GiB took %d MiB over idle; the target is under 64 MiB", (peak-idle)>>20)
	}
}

// inParallel calls put for each file, n at a time, and returns the first error.
func inParallel(files []*os.File, n int, put func(int, *os.File) error) error {
	var g errgroup.Group
	g.SetLimit(n)
	for i, f := range files {
		g.Go(func() error { return put(i, f) })
	}
	return g.Wait()
}

func randomFile(t *testing.T, dir, name string, size int64) *os.File {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetPeak resets the process's VmHWM to its current RSS (proc(5), clear_refs "5").
func resetPeak(t *testing.T) {
	t.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatal(err)
	}
}

func vmRSS(t *testing.T) int64 { return procStatus(t, "VmRSS:") }
func vmHWM(t *testing.T) int64 { return procStatus(t, "VmHWM:") }

func procStatus(t *testing.T, key string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) >= 2 && fields[0] == key {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("%s not in /proc/self/status", key)
	return 0
}
