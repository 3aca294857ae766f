// Package s3server runs a real S3-compatible server for tests: SeaweedFS's weed, built from
// its Go module by hack/s3server.sh, on loopback ports, with its data in a directory that
// outlives a Kill so that a restarted server holds what it held.
package s3server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"golang.org/x/sys/unix"

	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// Credentials of the server's one identity.
const (
	AccessKeyID     = "checkpoint-quota-test"
	SecretAccessKey = "checkpoint-quota-test-secret"
)

// Server is one running weed server with its S3 gateway.
type Server struct {
	// Endpoint is the S3 API's URL.
	Endpoint string
	// Client talks to it as the one identity.
	Client *minio.Client

	bin, dir string
	args     []string
	cmd      *exec.Cmd
	log      *os.File
}

// ErrUnavailable wraps the reason no server can run here: tests skip on it, saying why.
var ErrUnavailable = errors.New("no S3 server on this machine")

// Binary returns the weed binary: CHECKPOINT_S3_SERVER when set, else the one hack/s3server.sh
// built into its cache. It builds nothing (a test must not wait the build's many minutes):
// without it, ErrUnavailable says to run hack/s3server.sh.
func Binary() (string, error) {
	if bin := os.Getenv("CHECKPOINT_S3_SERVER"); bin != "" {
		return bin, nil
	}
	cmd := exec.Command(filepath.Join(testenv.RepoRoot(), "hack", "s3server.sh"))
	cmd.Env = append(os.Environ(), "S3SERVER_CACHED_ONLY=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s", ErrUnavailable, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// Start runs a server that keeps its data in dir, and waits until it answers.
func Start(ctx context.Context, dir string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	// Each service listens on its port and on port+10000 (gRPC): ports below 55535 whose
	// gRPC twin is free too.
	ports, err := freePairs(4)
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dir: dir, Endpoint: fmt.Sprintf("http://127.0.0.1:%d", ports[3])}
	s.args = []string{"server", "-dir=" + dir, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		// No report to SeaweedFS's telemetry service: tests reach nothing off this machine.
		"-master.telemetry=false",
		fmt.Sprintf("-master.port=%d", ports[0]), fmt.Sprintf("-volume.port=%d", ports[1]), "-volume.max=16",
		"-filer", fmt.Sprintf("-filer.port=%d", ports[2]),
		"-s3", fmt.Sprintf("-s3.port=%d", ports[3]), "-s3.port.iceberg=0", "-s3.port.lance=0"}
	if s.Client, err = s.client(false); err != nil {
		return nil, err
	}
	return s, s.Restart(ctx)
}

// ChecksumClient is a client of the server, as its one identity, that sends the checksum of
// each part in a trailer, as an upload with minio.PutObjectOptions.Checksum needs: the
// benchmarks time with it the store's limit for an upload it verifies.
func (s *Server) ChecksumClient() (*minio.Client, error) { return s.client(true) }

// client is a client of the server as its one identity, sending checksums in trailers or not.
func (s *Server) client(trailing bool) (*minio.Client, error) {
	return minio.New(strings.TrimPrefix(s.Endpoint, "http://"), &minio.Options{
		Creds: credentials.NewStaticV4(AccessKeyID, SecretAccessKey, ""), BucketLookup: minio.BucketLookupPath,
		Region: "us-east-1", TrailingHeaders: trailing})
}

// Restart starts the server again on the same ports and data, after Kill, and waits until
// it answers.
func (s *Server) Restart(ctx context.Context) error {
	log, err := os.OpenFile(filepath.Join(s.dir, "weed.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	s.log = log
	s.cmd = exec.Command(s.bin, s.args...)
	s.cmd.Dir = s.dir
	s.cmd.Stdout, s.cmd.Stderr = log, log
	s.cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+AccessKeyID, "AWS_SECRET_ACCESS_KEY="+SecretAccessKey)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.bin, err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		probe, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := s.Client.ListBuckets(probe)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.Kill()
			return fmt.Errorf("the S3 server did not answer within 90 s (log: %s): %w", log.Name(), err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Kill stops the server at once, as a crash would; its data stays for Restart.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	_ = s.cmd.Wait()
	_ = s.log.Close()
	s.cmd = nil
}

// Pin keeps the running server on the given CPUs (every thread it has; the threads it
// starts later inherit it from them), so a benchmark can give it cores of its own.
func (s *Server) Pin(cpus ...int) error {
	if s.cmd == nil || s.cmd.Process == nil {
		return errors.New("the S3 server is not running")
	}
	return Pin(s.cmd.Process.Pid, cpus...)
}

// Pin sets the CPU affinity of every thread of the process pid (os.Getpid() for the
// calling process) to cpus.
func Pin(pid int, cpus ...int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	// A thread that an unpinned one starts during a pass is pinned by the next.
	pinned := map[int]bool{}
	for {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return err
		}
		more := false
		for _, task := range tasks {
			tid, err := strconv.Atoi(task.Name())
			if err != nil || pinned[tid] {
				continue
			}
			// A thread that ended since the listing is no error.
			if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("pinning thread %d of process %d to CPUs %v: %w", tid, pid, cpus, err)
			}
			pinned[tid], more = true, true
		}
		if !more {
			return nil
		}
	}
}

// MakeBucket creates a bucket, waiting until the server can (its volume may still be
// joining the master).
func (s *Server) MakeBucket(ctx context.Context, name string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := s.Client.MakeBucket(ctx, name, minio.MakeBucketOptions{})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// freePairs finds n loopback ports below 55535 that are free, each with port+10000 free too.
func freePairs(n int) ([]int, error) {
	var out []int
	for port := 20000 + os.Getpid()%20000; len(out) < n && port < 55535; port++ {
		if free(port) && free(port+10000) {
			out = append(out, port)
		}
	}
	if len(out) < n {
		return nil, errors.New("no free loopback ports for the S3 server")
	}
	return out, nil
}

func free(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}
