package nodeagent_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/nodeagent"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// BenchmarkAgentPublish runs the node-agent binary, as a node would, over a directory of
// archives against the test bed, and reports the time until every archive is a published
// Checkpoint, the bytes read per archive, the agent's CPU seconds and peak RSS, and its CPU
// use while idle afterwards (no rescan falls in that window).
func BenchmarkAgentPublish(b *testing.B) {
	env, bin, ns := agentBed(b, "bench")
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

// agentBed starts a test bed, builds the node-agent binary and creates a namespace for
// the archives; the bed stops when the benchmark ends.
func agentBed(b *testing.B, namespace string) (env *testenv.Env, bin, ns string) {
	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = env.Stop() })
	bin = filepath.Join(b.TempDir(), "node-agent")
	build := exec.Command("go", "build", "-o", bin, "./cmd/node-agent")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building the node agent: %v\n%s", err, out)
	}
	if ns, err = env.CreateNamespace(context.Background(), namespace); err != nil {
		b.Fatal(err)
	}
	return env, bin, ns
}

func runAgent(b *testing.B, env *testenv.Env, bin, node, dir string, count int) {
	cmd, metricsURL := agentCommand(b, env, bin, node, dir)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()

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
	if err := env.Client.List(context.Background(), &list, client.MatchingFields{cqv1.FieldArchiveNode: node}); err != nil {
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

// agentCommand is the node-agent binary for node over dir, with the URL of its metrics.
func agentCommand(b *testing.B, env *testenv.Env, bin, node, dir string) (*exec.Cmd, string) {
	port := testenv.FreePort(b)
	cmd := exec.Command(bin, "--kubeconfig", env.Kubeconfig, "--node-name", node, "--checkpoint-dir", dir,
		// A state directory of its own: not the node's default, and empty for each run.
		"--state-dir", b.TempDir(),
		"--settle-time", "200ms", "--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", port),
		"--health-probe-bind-address", "0", "--zap-log-level", "error")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd, fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
}

// scrape returns the value of an unlabelled-but-node metric from the agent's endpoint, or
// of the first series whose line starts with name when name holds labels, or 0.
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
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") || strings.Contains(name, "{") && strings.HasPrefix(line, name) {
			fields := strings.Fields(line)
			v, _ := strconv.ParseFloat(fields[len(fields)-1], 64)
			return v
		}
	}
	return 0
}

// procCPU is the user and system CPU time a running process has used.
func procCPU(b *testing.B, pid int) time.Duration {
	_, ticks, err := procStat(pid)
	if err != nil {
		b.Fatal(err)
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

func sizeName(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%dGiB", n>>30)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}

// BenchmarkStream writes archives into the directory at a steady rate, in place and with
// fresh modification times as the runtimes write them, while the node-agent binary runs,
// and reports the lag from each archive's last byte to its Checkpoint's arrival on a
// watch (p50, p99, max), the largest backlog, and the agent's CPU per archive. The 2s case
// is the settle time before unfinished archives were recognised by their missing marker.
func BenchmarkStream(b *testing.B) {
	ctrllog.SetLogger(logr.Discard())
	env, bin, ns := agentBed(b, "stream")
	for _, tc := range []struct {
		rate   int
		settle time.Duration
	}{{20, 2 * time.Second}, {20, nodeagent.DefaultSettleTime}, {100, nodeagent.DefaultSettleTime}} {
		b.Run(fmt.Sprintf("%d-per-s/settle-%v", tc.rate, tc.settle), func(b *testing.B) {
			for b.Loop() {
				streamOnce(b, env, bin, ns, tc.rate, tc.settle)
			}
		})
	}
}

func streamOnce(b *testing.B, env *testenv.Env, bin, ns string, rate int, settle time.Duration) {
	const seconds = 10
	count := rate * seconds
	dir := b.TempDir()
	node := fmt.Sprintf("stream-%d-%d", rate, time.Now().UnixNano())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Every archive's bytes, made before the clock starts.
	src := b.TempDir()
	names := make([]string, count)
	data := make([][]byte, count)
	start := time.Now().UTC().Truncate(time.Second)
	for i := range count {
		a := testarchive.New(ns, fmt.Sprintf("pod-%03d", i%100), "app").At(start.Add(time.Duration(i) * time.Second)).WithSize(72 << 10)
		if i%2 == 1 {
			a.WithRuntime(testarchive.Containerd)
		}
		path := a.MustWrite(src)
		names[i] = filepath.Base(path)
		var err error
		if data[i], err = os.ReadFile(path); err != nil {
			b.Fatal(err)
		}
	}

	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	w, err := wc.Watch(ctx, &cqv1.CheckpointList{}, client.InNamespace(ns), client.MatchingFields{cqv1.FieldArchiveNode: node})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	var mu sync.Mutex
	seen := map[string]time.Time{}
	allSeen := make(chan struct{})
	go func() {
		for ev := range w.ResultChan() {
			mu.Lock()
			if c, ok := ev.Object.(*cqv1.Checkpoint); ok && c.Spec.Archive != nil {
				if _, dup := seen[c.Spec.Archive.FileName]; !dup {
					seen[c.Spec.Archive.FileName] = time.Now()
					if len(seen) == count {
						close(allSeen)
					}
				}
			}
			mu.Unlock()
		}
	}()

	cmd := exec.Command(bin, "--kubeconfig", env.Kubeconfig, "--node-name", node, "--checkpoint-dir", dir,
		"--state-dir", b.TempDir(), "--orphan-namespace", ns, "--settle-time", settle.String(),
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--zap-log-level", "error")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	time.Sleep(2 * time.Second) // the agent's caches sync before the first archive
	cpu0 := procCPU(b, cmd.Process.Pid)

	written := make([]time.Time, count)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	for i := range count {
		<-tick.C
		if err := os.WriteFile(filepath.Join(dir, names[i]), data[i], 0o600); err != nil {
			b.Fatal(err)
		}
		written[i] = time.Now()
	}
	tick.Stop()
	select {
	case <-allSeen:
	case <-time.After(2 * time.Minute):
		b.Fatalf("not all %d Checkpoints after 2 minutes", count)
	}
	cpu := procCPU(b, cmd.Process.Pid) - cpu0
	w.Stop()
	mu.Lock()
	defer mu.Unlock()

	lags := make([]time.Duration, count)
	type event struct {
		at    time.Time
		delta int
	}
	var events []event
	for i, name := range names {
		lags[i] = seen[name].Sub(written[i])
		events = append(events, event{written[i], 1}, event{seen[name], -1})
	}
	slices.Sort(lags)
	slices.SortFunc(events, func(x, y event) int { return x.at.Compare(y.at) })
	backlog, most := 0, 0
	for _, e := range events {
		backlog += e.delta
		most = max(most, backlog)
	}
	b.ReportMetric(lags[count/2].Seconds(), "s-lag-p50")
	b.ReportMetric(lags[count*99/100].Seconds(), "s-lag-p99")
	b.ReportMetric(lags[count-1].Seconds(), "s-lag-max")
	b.ReportMetric(float64(most), "max-backlog")
	b.ReportMetric(cpu.Seconds()*1000/float64(count), "agent-cpu-ms/archive")
}
