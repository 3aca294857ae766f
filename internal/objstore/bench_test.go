package objstore_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/objstore"
	"github.com/checkpoint-quota/checkpoint-quota/nodeagent"
	"github.com/checkpoint-quota/checkpoint-quota/test/s3server"
)

// TestThroughput measures what docs/offload.md reports ("Figures"): one agent's uploads per
// second of small archives and MB/s of a 1 GiB archive, each beside the store's own limit
// measured in the same run by the same client, and the limit of the disk the archives are
// read from; and the process's peak memory (VmHWM, reset before) over what it held before
// the 1 GiB upload. The uploader is configured as the agent's (16 MiB parts, the agent's
// Buffers). It measures twice: with the store and the test on the same cores (this
// machine's test bed), then with each on cores of its own (the test pinned to CPU 0, the
// store to CPU 1), as a store that is not on the node's cores. It writes real files and
// runs the real S3 server on this machine, so it runs only with OFFLOAD_BENCH=1:
// `OFFLOAD_BENCH=1 go test ./internal/objstore/ -run Throughput -v`.
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
		AccessKeyID: s3server.AccessKeyID, SecretAccessKey: s3server.SecretAccessKey,
		Buffers: objstore.NewBuffers(nodeagent.OffloadBufferBytes)})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	small := make([]*os.File, 50)
	for i := range small {
		small[i] = randomFile(t, dir, fmt.Sprintf("small-%d.tar", i), 1<<20)
	}
	big := randomFile(t, dir, "big.tar", 1<<30)
	diskLimit(t, small, big)

	// SeaweedFS grows its volumes on the first writes to a bucket: the first ten uploads of
	// 1 MiB took 0.9 s each on this machine, the next ones 22 ms. The figures are of a store
	// that has run a while: it takes 20 uploads first, untimed.
	for i := range 20 {
		warm := randomFile(t, dir, fmt.Sprintf("warm-%d.tar", i), 1<<20)
		if _, err := st.Upload(ctx, fmt.Sprintf("warm/%d.tar", i), objstore.Archive{File: warm, Size: 1 << 20, UID: "warm"}); err != nil {
			t.Fatal(err)
		}
	}
	verifying, err := srv.ChecksumClient()
	if err != nil {
		t.Fatal(err)
	}
	b := bench{t: t, ctx: ctx, srv: srv, st: st, small: small, big: big, verifying: verifying}
	b.sums()
	for _, cores := range []struct {
		what         string
		test, server []int
	}{{"shared cores", []int{0, 1}, []int{0, 1}}, {"separate cores", []int{0}, []int{1}}} {
		if err := s3server.Pin(os.Getpid(), cores.test...); err != nil {
			t.Fatal(err)
		}
		if err := srv.Pin(cores.server...); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: this process on CPUs %v, the store on %v", cores.what, cores.test, cores.server)
		b.smallArchives(cores.what)
		b.largeArchive(cores.what, cores.what == "shared cores")
	}
	if err := s3server.Pin(os.Getpid(), 0, 1); err != nil {
		t.Fatal(err)
	}
}

// bench is what TestThroughput measures with.
type bench struct {
	t         *testing.T
	ctx       context.Context
	srv       *s3server.Server
	st        *objstore.Store
	small     []*os.File
	big       *os.File
	smallSums []string
	// verifying is a client of the same store that sends S3 checksums (trailing headers).
	verifying *minio.Client
}

// sums computes the SHA-256 checksum of each small file, untimed, for the checked PUTs.
func (b *bench) sums() {
	for _, f := range b.small {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<20)); err != nil {
			b.t.Fatal(err)
		}
		b.smallSums = append(b.smallSums, base64.StdEncoding.EncodeToString(h.Sum(nil)))
	}
}

// rounds of each way to put the 50 small files: the median of three, taken in turns so
// that the machine's other load falls on each alike.
const rounds = 3

// smallArchives measures 50 archives of 1 MiB, one at a time and four in flight (the agent's
// DefaultOffloadWorkers): the uploader, then the store's own limit, plain PUTs of the same
// files by the same client, their bodies neither hashed by the client nor checked by the
// store (UNSIGNED-PAYLOAD): the least work per byte an upload can ask of both; and the same
// PUTs with the SHA-256 checksum that the uploader has the store compute and check (sums
// computed before): what verifying costs the store alone.
func (b *bench) smallArchives(cores string) {
	upload := func(i int, f *os.File) error {
		_, err := b.st.Upload(b.ctx, fmt.Sprintf("small/%d.tar", i), objstore.Archive{File: f, Size: 1 << 20, UID: types.UID(fmt.Sprint(i))})
		return err
	}
	plain := func(i int, f *os.File) error {
		_, err := b.srv.Client.PutObject(b.ctx, "bench", fmt.Sprintf("plain/%d.tar", i), io.NewSectionReader(f, 0, 1<<20), 1<<20,
			minio.PutObjectOptions{DisableContentSha256: true})
		return err
	}
	checked := func(i int, f *os.File) error {
		_, err := (minio.Core{Client: b.srv.Client}).PutObject(b.ctx, "bench", fmt.Sprintf("checked/%d.tar", i), io.NewSectionReader(f, 0, 1<<20), 1<<20, "", "",
			minio.PutObjectOptions{DisableContentSha256: true, UserMetadata: map[string]string{"x-amz-checksum-sha256": b.smallSums[i]}})
		return err
	}
	ways := []struct {
		what string
		put  func(int, *os.File) error
	}{{"the uploader", upload}, {"the store's limit (plain PUTs)", plain}, {"plain PUTs with their SHA-256 checksum", checked}}
	for _, inFlight := range []int{1, 4} {
		rates := make([][]float64, len(ways))
		cpus := make([][]time.Duration, len(ways))
		for range rounds {
			for w, way := range ways {
				cpu0, start := cpuTime(), time.Now()
				if err := inParallel(b.small, inFlight, way.put); err != nil {
					b.t.Fatal(err)
				}
				rates[w] = append(rates[w], float64(len(b.small))/time.Since(start).Seconds())
				cpus[w] = append(cpus[w], cpuTime()-cpu0)
			}
		}
		for w, way := range ways {
			b.t.Logf("%s, 50 archives of 1 MiB, %d in flight, %s: %.1f uploads/s (median of %s), %.1f ms CPU of this process per archive",
				cores, inFlight, way.what, median(rates[w]), rateList(rates[w]), median(millis(cpus[w]))/float64(len(b.small)))
		}
	}
}

// largeArchive measures one 1 GiB archive: the uploader, then the store's own limit, minio-go's
// multipart PUT of the same file (16 MiB parts, unsigned bodies, two parts at a time, as
// the uploader sends them), twice each in turns. With memory, the first upload also
// measures the process's peak memory over what it held before.
func (b *bench) largeArchive(cores string, memory bool) {
	for run := range 2 {
		runtime.GC()
		idle := vmRSS(b.t)
		resetPeak(b.t)
		cpu0, start := cpuTime(), time.Now()
		if _, err := b.st.Upload(b.ctx, "big.tar", objstore.Archive{File: b.big, Size: 1 << 30, UID: "big"}); err != nil {
			b.t.Fatal(err)
		}
		wall := time.Since(start)
		peak := vmHWM(b.t)
		b.t.Logf("%s, 1 GiB archive, the uploader: %.1f MB/s, %.2f s wall, %.2f s CPU of this process",
			cores, float64(1<<30)/1e6/wall.Seconds(), wall.Seconds(), (cpuTime() - cpu0).Seconds())
		if memory && run == 0 {
			b.t.Logf("memory while uploading 1 GiB: RSS before %d MiB, peak during %d MiB: %+d MiB over idle", idle>>20, peak>>20, (peak-idle)>>20)
			if peak-idle > 64<<20 {
				b.t.Errorf("the upload of 1 GiB took %d MiB over idle; the target is under 64 MiB", (peak-idle)>>20)
			}
		}
		cpu0, start = cpuTime(), time.Now()
		if _, err := b.srv.Client.PutObject(b.ctx, "bench", "plain/big.tar", io.NewSectionReader(b.big, 0, 1<<30), 1<<30,
			minio.PutObjectOptions{PartSize: 16 << 20, NumThreads: 2, DisableContentSha256: true}); err != nil {
			b.t.Fatal(err)
		}
		wall = time.Since(start)
		b.t.Logf("%s, 1 GiB archive, the store's limit (one plain multipart PUT, 2 parts at a time): %.1f MB/s, %.2f s wall, %.2f s CPU",
			cores, float64(1<<30)/1e6/wall.Seconds(), wall.Seconds(), (cpuTime() - cpu0).Seconds())
		// The same multipart PUT with each part's SHA-256 sent as its S3 checksum, which the
		// store computes and checks: the store's limit for an upload it verifies, as the
		// uploader's are (minio-go needs a client with trailing headers for checksums).
		cpu0, start = cpuTime(), time.Now()
		if _, err := b.verifying.PutObject(b.ctx, "bench", "checked/big.tar", io.NewSectionReader(b.big, 0, 1<<30), 1<<30,
			minio.PutObjectOptions{PartSize: 16 << 20, NumThreads: 2, DisableContentSha256: true, Checksum: minio.ChecksumSHA256}); err != nil {
			b.t.Fatal(err)
		}
		wall = time.Since(start)
		b.t.Logf("%s, 1 GiB archive, the store's limit for a verified upload (one multipart PUT, each part with its SHA-256 checksum, 2 parts at a time): %.1f MB/s, %.2f s wall, %.2f s CPU",
			cores, float64(1<<30)/1e6/wall.Seconds(), wall.Seconds(), (cpuTime() - cpu0).Seconds())
	}
}

// diskLimit measures how fast the archives are read from the disk they are on: cold (each
// file's pages dropped from the page cache first, with posix_fadvise on the test's own
// files) and from the page cache, as the uploader reads them (pread into one buffer).
func diskLimit(t *testing.T, small []*os.File, big *os.File) {
	t.Helper()
	all := append([]*os.File{big}, small...)
	for _, f := range all {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	read := func(files []*os.File, size int64, buf []byte) time.Duration {
		start := time.Now()
		for _, f := range files {
			for off := int64(0); off < size; off += int64(len(buf)) {
				if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
					t.Fatal(err)
				}
			}
		}
		return time.Since(start)
	}
	drop := func(files []*os.File) {
		for _, f := range files {
			if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
				t.Fatal(err)
			}
		}
	}
	buf := make([]byte, 16<<20)
	for _, cache := range []string{"cold", "page cache"} {
		if cache == "cold" {
			drop(all)
		}
		wall := read(small, 1<<20, buf[:1<<20])
		t.Logf("the disk's limit, %s: 50 files of 1 MiB read in %.3f s: %.0f files/s, %.0f MB/s",
			cache, wall.Seconds(), 50/wall.Seconds(), 50*float64(1<<20)/1e6/wall.Seconds())
		wall = read([]*os.File{big}, 1<<30, buf)
		t.Logf("the disk's limit, %s: 1 GiB read in %.2f s: %.0f MB/s", cache, wall.Seconds(), float64(1<<30)/1e6/wall.Seconds())
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func millis(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(time.Millisecond)
	}
	return out
}

func rateList(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.1f", x)
	}
	return strings.Join(parts, ", ")
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
