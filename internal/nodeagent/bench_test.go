package nodeagent_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// BenchmarkAgentPublish runs the node-agent binary, as a node would, over a directory of
// archives against the test bed, and reports the time until every archive is a published
// Checkpoint, the bytes read per archive, the agent's CPU seconds and peak RSS, and its CPU
// use while idle afterwards (no rescan falls in that window).
func BenchmarkAgentPublish(b *testing.B) {
	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	bin := filepath.Join(b.TempDir(), "node-agent")
	build := exec.Command("go", "build", "-o", bin, "./cmd/node-agent")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building the node agent: %v\n%s", err, out)
	}
	ns, err := env.CreateNamespace(context.Background(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		count int
		size  int64
	}{
		{count: 1, size: 1 << 30},
		{count: 1000, size: 64 << 10},
		{count: 10000, size: 64 << 10},
	}
	for _, tc := range cases {
		name := fmt.Sprintf("%dx%s", tc.count, sizeName(tc.size))
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				dir := b.TempDir()
				taken := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
				for i := range tc.count {
					a := testarchive.New(ns, fmt.Sprintf("pod-%05d", i), "app").At(taken).WithSize(tc.size)
					if i%2 == 1 {
						a.WithRuntime(testarchive.Containerd)
					}
					a.MustWrite(dir)
				}
				node := "bench-" + strings.ToLower(name) + "-" + strconv.Itoa(b.N)
				runAgent(b, env, bin, node, dir, tc.count)
				_ = os.RemoveAll(dir)
			}
		})
	}
}

func runAgent(b *testing.B, env *testenv.Env, bin, node, dir string, count int) {
	port := freePort(b)
	cmd := exec.Command(bin, "--kubeconfig", env.Kubeconfig, "--node-name", node, "--checkpoint-dir", dir,
		"--settle-time", "200ms", "--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", port),
		"--health-probe-bind-address", "0", "--zap-log-level", "error")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()

	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	deadline := time.Now().Add(10 * time.Minute)
	var published float64
	for published < float64(count) {
		if time.Now().After(deadline) {
			b.Fatalf("only %v of %d archives published after 10 minutes", published, count)
		}
		time.Sleep(50 * time.Millisecond)
		published = scrape(metricsURL, "checkpointquota_node_archives")
	}
	ready := time.Since(start)
	// The watch events of the last status writes are still being handled; let them end.
	time.Sleep(5 * time.Second)
	busyCPU := procCPU(b, cmd.Process.Pid)
	// Idle: nothing changes on disk; only the rescan (5m, outside the window) would read the directory.
	const idleWindow = 5 * time.Second
	time.Sleep(idleWindow)
	idleCPU := procCPU(b, cmd.Process.Pid) - busyCPU
	reads := scrape(metricsURL, "checkpointquota_node_archive_reads_total")
	bytesRead := scrape(metricsURL, "checkpointquota_node_archive_read_bytes_total")

	var list metav1.PartialObjectMetadataList
	list.SetGroupVersionKind(cqv1.GroupVersion.WithKind("CheckpointList"))
	if err := env.Client.List(context.Background(), &list, client.MatchingLabels{cqv1.LabelNode: node}); err != nil {
		b.Fatal(err)
	}
	if len(list.Items) != count {
		b.Fatalf("%d Checkpoints exist for %d archives", len(list.Items), count)
	}

	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	rssMiB := float64(ru.Maxrss) / 1024 // KiB on Linux

	b.ReportMetric(ready.Seconds(), "s-until-all-published")
	b.ReportMetric(bytesRead/reads, "bytes-read/archive")
	b.ReportMetric(cpu.Seconds(), "agent-cpu-s")
	b.ReportMetric(rssMiB, "agent-peak-rss-MiB")
	b.ReportMetric(idleCPU.Seconds()*1000/idleWindow.Seconds(), "idle-cpu-ms/s")
	b.Logf("%d archives: all published in %v; %.0f reads, %.0f bytes read per archive; agent CPU %.2fs (%.2fs before the idle window), peak RSS %.1f MiB; idle CPU %v over %v",
		count, ready.Round(time.Millisecond), reads, bytesRead/reads, cpu.Seconds(), busyCPU.Seconds(), rssMiB, idleCPU, idleWindow)
}

func freePort(b *testing.B) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// scrape returns the value of an unlabelled-but-node metric from the agent's endpoint, or 0.
func scrape(url, name string) float64 {
	resp, err := http.Get(url) //nolint:gosec,noctx // a local test endpoint
	if err != nil {
		return 0
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			fields := strings.Fields(line)
			v, _ := strconv.ParseFloat(fields[len(fields)-1], 64)
			return v
		}
	}
	return 0
}

// procCPU is the user and system CPU time a running process has used.
func procCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond
}

func sizeName(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%dGiB", n>>30)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}
