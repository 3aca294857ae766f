package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/controllers"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// benchBed is a test bed with the manager running on the wall clock.
type benchBed struct {
	env  *testenv.Env
	stop []func()
	// kubeconfig is what the operators under measurement run with: env.Kubeconfig, or,
	// with tokens (peerBed), a bearer token's.
	kubeconfig string
}

func newBenchBed(b *testing.B) *benchBed {
	return newBenchBedWith(b, testenv.Options{})
}

func newBenchBedWith(b *testing.B, opts testenv.Options) *benchBed {
	b.Helper()
	ctrl.SetLogger(logr.Discard())
	e, err := testenv.Start(opts)
	if err != nil {
		b.Fatal(err)
	}
	bed := &benchBed{env: e, kubeconfig: e.Kubeconfig}
	b.Cleanup(bed.close)
	return bed
}

// close stops what runs on the bed and the bed itself; later calls do nothing.
func (bed *benchBed) close() {
	for i := len(bed.stop) - 1; i >= 0; i-- {
		bed.stop[i]()
	}
	bed.stop = nil
	if bed.env != nil {
		_ = bed.env.Stop()
		bed.env = nil
	}
}

func (bed *benchBed) run(b *testing.B, start func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := start(ctx); err != nil {
			b.Error(err)
		}
	}()
	bed.stop = append(bed.stop, func() { cancel(); <-done })
}

func (bed *benchBed) startManager(b *testing.B) {
	mgr, err := ctrl.NewManager(bed.env.Config, ctrl.Options{Scheme: testenv.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := controllers.Setup(context.Background(), mgr, controllers.DefaultOptions); err != nil {
		b.Fatal(err)
	}
	bed.run(b, mgr.Start)
}

// namespaces creates n namespaces labelled for a cluster quota's selector.
func (bed *benchBed) namespaces(b *testing.B, n int, label string) []string {
	var out []string
	for i := range n {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%03d", label, i), Labels: map[string]string{"bench": label}}}
		if err := bed.env.Client.Create(context.Background(), ns); err != nil {
			b.Fatal(err)
		}
		out = append(out, ns.Name)
	}
	return out
}

// waitFor polls cond until it holds, failing the benchmark after timeout.
func waitFor(b *testing.B, timeout, every time.Duration, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(every)
	}
}

func countCheckpoints(b *testing.B, c client.Client, opts ...client.ListOption) int {
	benchLists.Add(1)
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(cqv1.GroupVersion.WithKind("CheckpointList"))
	if err := c.List(context.Background(), list, opts...); err != nil {
		b.Fatal(err)
	}
	return len(list.Items)
}

// BenchmarkBurst5000 writes 5,000 archives of 72 KiB (10 namespaces x 10 pods x 1
// container x 50) on one node, lets a real agent publish them, applies a limit of 5 per
// container, and measures the time until the directory holds exactly the 500 newest. The
// manager and the agent run as their real binaries, so that their CPU time and peak RSS
// are theirs alone (read from /proc).
func BenchmarkBurst5000(b *testing.B) {
	bin := b.TempDir()
	for _, cmd := range []string{"manager", "node-agent"} {
		build := exec.Command("go", "build", "-o", filepath.Join(bin, cmd), "./cmd/"+cmd)
		build.Dir = testenv.RepoRoot()
		if out, err := build.CombinedOutput(); err != nil {
			b.Fatalf("go build ./cmd/%s: %v\n%s", cmd, err, out)
		}
	}
	for range b.N {
		bed := newBenchBed(b)
		dir := b.TempDir()
		var newest []string
		for _, ns := range bed.namespaces(b, 10, "burst") {
			for p := range 10 {
				for i := range 50 {
					a := testarchive.New(ns, fmt.Sprintf("pod-%d", p), "app").WithRuntime(testarchive.Containerd).
						WithSize(72 << 10).At(time.Now().Add(-time.Duration(50-i) * time.Minute))
					a.MustWrite(dir)
					if i >= 45 {
						newest = append(newest, a.FileName())
					}
				}
			}
		}
		sort.Strings(newest)
		if err := bed.env.Client.Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "bench-node"}}); err != nil {
			b.Fatal(err)
		}
		w0, n0, g0 := checkpointWrites(b, bed.env.Config), apiWrites(b, bed.env.Config, "checkpointnodes"), checkpointGets(b, bed.env.Config)
		r0, l0 := allRequests(b, bed.env.Config), benchLists.Load()
		t0 := time.Now()
		managerPprof, agentPprof := profileAddr(b), profileAddr(b)
		manager := bed.process(b, filepath.Join(bin, "manager"), "--kubeconfig", bed.env.Kubeconfig,
			"--enable-webhooks=false", "--metrics-bind-address=0", "--health-probe-bind-address=0", "--zap-log-level=info",
			"--pprof-bind-address="+managerPprof)
		agent := bed.process(b, filepath.Join(bin, "node-agent"), "--kubeconfig", bed.env.Kubeconfig, "--node-name", "bench-node",
			"--checkpoint-dir", dir, "--state-dir", b.TempDir(), "--settle-time", "200ms", "--metrics-bind-address=0", "--health-probe-bind-address=0", "--zap-log-level=info",
			"--pprof-bind-address="+agentPprof)
		managerPublished := profile(b, managerPprof, "manager-publish", 20*time.Second)
		profile(b, agentPprof, "agent-publish", 6*time.Second)
		waitFor(b, 5*time.Minute, 200*time.Millisecond, "5,000 Checkpoints", func() bool {
			return countCheckpoints(b, bed.env.Client) == 5000
		})
		publish := time.Since(t0)
		// What each process allocated to publish (alloc_space), and holds.
		heapProfile(b, managerPprof, "manager-heap-published")
		heapProfile(b, agentPprof, "agent-heap-published")
		// CPU per published archive, from each process's start: the manager only watches
		// and accounts here (no quota yet), the agent reads and creates.
		publishCPUManager, publishCPUAgent := procCPU(b, manager), procCPU(b, agent)
		w1 := quietWrites(b, bed.env.Config)
		nodeWrites, _ := testenv.Between(n0, apiWrites(b, bed.env.Config, "checkpointnodes"))
		// The agent asks the apiserver about a Checkpoint its cache does not show.
		gets := checkpointGets(b, bed.env.Config) - g0
		r1, l1 := allRequests(b, bed.env.Config), benchLists.Load()
		stored := storedSize(b, bed.env.Client)

		q0 := apiWrites(b, bed.env.Config, "clustercheckpointquotas")
		apiserver, etcd := bed.apiserverPID(b), bed.etcdPID(b)
		api0, etcd0 := procCPU(b, apiserver), procCPU(b, etcd)
		mcpu, acpu, t1 := procCPU(b, manager), procCPU(b, agent), time.Now()
		apiserverProfile(b, bed, "apiserver-prune", 15*time.Second)
		profile(b, agentPprof, "agent-prune", 15*time.Second)
		// The manager profiles once at a time: its prune's after its publishing's.
		go func() { managerPublished(); profile(b, managerPprof, "manager-prune", 15*time.Second) }()
		q := builder.ClusterQuota("burst").NamespaceSelector(map[string]string{"bench": "burst"}).PerContainer(5, "").Obj()
		if err := bed.env.Client.Create(context.Background(), q); err != nil {
			b.Fatal(err)
		}
		// The manager's part: every pruned Checkpoint is being deleted. Metadata only, and
		// twice a second: polled every 100 ms, these LISTs of 5,000 were a sixth of the
		// apiserver's CPU during the prune (its profile, BENCH_PROFILE_DIR).
		waitFor(b, 5*time.Minute, 500*time.Millisecond, "4,500 Checkpoints being deleted", func() bool {
			return countLive(b, bed.env.Client) == 500
		})
		decided := time.Since(t1)
		// The agent's part: the files are gone. Names only, unsorted and without a stat.
		waitFor(b, 5*time.Minute, 100*time.Millisecond, "500 archives on disk", func() bool {
			return countFiles(dir) == 500
		})
		converge := time.Since(t1)
		// The agent's file removals cost no request: the writes are the manager's deletes.
		waitFor(b, time.Minute, 100*time.Millisecond, "500 Checkpoints", func() bool {
			return countCheckpoints(b, bed.env.Client) == 500
		})
		w2 := quietWrites(b, bed.env.Config)
		r2, l2 := allRequests(b, bed.env.Config), benchLists.Load()
		published, byPublish := testenv.Between(w0, w1)
		pruned, byPrune := testenv.Between(w1, w2)
		// The quota's status writes: the usage the status controller reports, and the
		// pruned counter that the pass writes ahead of its deletes.
		_, byQuota := testenv.Between(q0, apiWrites(b, bed.env.Config, "clustercheckpointquotas"))
		b.Logf("API writes on Checkpoints: publishing 5,000 %v, pruning 4,500 %v", byPublish, byPrune)
		mcpu, acpu = procCPU(b, manager)-mcpu, procCPU(b, agent)-acpu
		apiCPU, etcdCPU := procCPU(b, apiserver)-api0, procCPU(b, etcd)-etcd0
		controlPlane := apiCPU + etcdCPU
		entries, _ := os.ReadDir(dir)
		var left []string
		for _, e := range entries {
			left = append(left, e.Name())
		}
		if fmt.Sprint(left) != fmt.Sprint(newest) {
			b.Fatalf("the directory holds 500 archives, but not the 500 newest")
		}
		b.ReportMetric(converge.Seconds(), "s-to-500-newest")
		b.ReportMetric(decided.Seconds(), "s-to-4500-deleting")
		b.ReportMetric(mcpu+acpu, "cpu-s-manager+agent")
		b.ReportMetric(controlPlane, "cpu-s-apiserver+etcd")
		b.ReportMetric(apiCPU, "cpu-s-apiserver")
		b.ReportMetric(etcdCPU, "cpu-s-etcd")
		b.ReportMetric(mcpu+acpu+controlPlane, "cpu-s-whole-system")
		b.ReportMetric(mcpu, "cpu-s-manager")
		b.ReportMetric(acpu, "cpu-s-agent")
		b.ReportMetric(procPeakRSSMiB(b, manager), "peak-rss-MiB-manager")
		b.ReportMetric(procPeakRSSMiB(b, agent), "peak-rss-MiB-agent")
		b.ReportMetric(publish.Seconds(), "s-agent-publish-5000")
		b.ReportMetric(publishCPUManager*1000/5000, "cpu-ms-manager/archive-published")
		b.ReportMetric(publishCPUAgent*1000/5000, "cpu-ms-agent/archive-published")
		b.ReportMetric(published/5000, "api-writes/archive-published")
		b.ReportMetric(nodeWrites, "checkpointnode-writes-publishing-5000")
		b.ReportMetric(gets/5000, "api-gets/archive-published")
		b.ReportMetric(pruned/4500, "api-writes/archive-pruned")
		// Every request, reads included, by every client (the bench's own LISTs taken out).
		allPublish, readsPublish := testenv.RequestsPer(b, "publishing", r0, r1, l1-l0, 5000)
		allPrune, readsPrune := testenv.RequestsPer(b, "pruning", r1, r2, l2-l1, 4500)
		b.ReportMetric(allPublish, "api-requests/archive-published")
		b.ReportMetric(readsPublish, "api-reads/archive-published")
		b.ReportMetric(allPrune, "api-requests/archive-pruned")
		b.ReportMetric(readsPrune, "api-reads/archive-pruned")
		b.ReportMetric(byQuota["PATCH/status"], "quota-status-writes-pruning-4500")
		b.ReportMetric(stored, "bytes/checkpoint-stored")
	}
}

// profileAddr is a pprof address for a process of the bench when BENCH_PROFILE_DIR is
// set, else "0" (off).
func profileAddr(b *testing.B) string {
	if os.Getenv("BENCH_PROFILE_DIR") == "" {
		return "0"
	}
	return fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
}

// profile saves a CPU profile of the next d from the pprof endpoint at addr into
// BENCH_PROFILE_DIR/name.pprof, in the background; nothing when profiling is off. The
// function returned waits for the profile to be saved (a process profiles once at a time).
func profile(b *testing.B, addr, name string, d time.Duration) (wait func()) {
	dir := os.Getenv("BENCH_PROFILE_DIR")
	if dir == "" || addr == "0" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(time.Second) // the endpoint starts with the process
		saveProfile(b, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())), filepath.Join(dir, name+".pprof"))
	}()
	return func() { <-done }
}

// saveProfile writes what the pprof URL answers into path; a failure is logged, not fatal.
func saveProfile(b *testing.B, url, path string) {
	resp, err := http.Get(url) //nolint:gosec,noctx // a local bench endpoint
	if err != nil {
		b.Logf("profile %s: %v", path, err)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	if err == nil {
		err = os.WriteFile(path, data, 0o600)
	}
	if err != nil {
		b.Logf("profile %s: %v", path, err)
	}
}

// apiserverProfile saves a CPU profile of the bed's kube-apiserver over the next d, from its
// own /debug/pprof, into BENCH_PROFILE_DIR/name.pprof, in the background; nothing when
// profiling is off.
func apiserverProfile(b *testing.B, bed *benchBed, name string, d time.Duration) {
	dir := os.Getenv("BENCH_PROFILE_DIR")
	if dir == "" {
		return
	}
	cs, err := kubernetes.NewForConfig(bed.env.Config)
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		data, err := cs.RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", strconv.Itoa(int(d.Seconds()))).DoRaw(context.Background())
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name+".pprof"), data, 0o600)
		}
		if err != nil {
			b.Logf("profile %s: %v", name, err)
		}
	}()
}

// heapProfile saves a heap profile from the pprof endpoint at addr into
// BENCH_PROFILE_DIR/name.pprof now; nothing when profiling is off.
func heapProfile(b *testing.B, addr, name string) {
	dir := os.Getenv("BENCH_PROFILE_DIR")
	if dir == "" || addr == "0" {
		return
	}
	saveProfile(b, fmt.Sprintf("http://%s/debug/pprof/heap", addr), filepath.Join(dir, name+".pprof"))
}

// process starts a binary until the bed stops, and returns its pid.
func (bed *benchBed) process(b *testing.B, path string, args ...string) int {
	cmd := exec.Command(path, args...)
	if dir := os.Getenv("BENCH_PROFILE_DIR"); dir != "" {
		// The processes' logs beside their profiles: a phase that never converges says why.
		name := fmt.Sprintf("%s-%d.log", filepath.Base(path), time.Now().UnixNano())
		if f, err := os.Create(filepath.Join(dir, name)); err == nil {
			cmd.Stdout, cmd.Stderr = f, f
			defer func() { _ = f.Close() }() // the process has its own descriptor
		}
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	bed.stop = append(bed.stop, func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	return cmd.Process.Pid
}

// procCPU is the user and system CPU seconds of a process, from /proc/<pid>/stat.
func procCPU(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The command name, in parentheses, may hold spaces: fields count from after it.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

// etcdPID finds the bed's etcd: the process of that name that serves the URL given to the
// kube-apiserver (--etcd-servers).
func (bed *benchBed) etcdPID(b *testing.B) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", bed.apiserverPID(b)))
	if err != nil {
		b.Fatal(err)
	}
	var server string
	for _, a := range strings.Split(string(data), "\x00") {
		if v, ok := strings.CutPrefix(a, "--etcd-servers="); ok {
			server = strings.Split(v, ",")[0]
		}
	}
	if pid := findProcess(func(args []string) bool {
		return server != "" && strings.HasSuffix(args[0], "etcd") && slices.ContainsFunc(args, func(a string) bool { return strings.Contains(a, server) })
	}); pid > 0 {
		return pid
	}
	b.Fatalf("no etcd process serving %q", server)
	return 0
}

// findProcess returns the pid of a process whose arguments match, 0 when none does.
func findProcess(match func(args []string) bool) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, path := range dirs {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if match(strings.Split(string(data), "\x00")) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
			return pid
		}
	}
	return 0
}

// apiserverPID finds the bed's kube-apiserver process by its secure port.
func (bed *benchBed) apiserverPID(b *testing.B) int {
	u, err := url.Parse(bed.env.Config.Host)
	if err != nil {
		b.Fatal(err)
	}
	want := "--secure-port=" + u.Port()
	if pid := findProcess(func(args []string) bool {
		return strings.HasSuffix(args[0], "kube-apiserver") && slices.Contains(args, want)
	}); pid > 0 {
		return pid
	}
	b.Fatalf("no kube-apiserver process with %s", want)
	return 0
}

// procRSSMiB is a process's resident set size now, VmRSS in /proc/<pid>/status.
func procRSSMiB(b *testing.B, pid int) float64 {
	return procStatusMiB(b, pid, "VmRSS:")
}

// procPeakRSSMiB is a process's peak resident set size, VmHWM in /proc/<pid>/status.
func procPeakRSSMiB(b *testing.B, pid int) float64 {
	return procStatusMiB(b, pid, "VmHWM:")
}

// resetPeakRSS sets the process's peak RSS (VmHWM) to its RSS now (Linux's clear_refs), so
// that a later procPeakRSSMiB is the peak since.
func resetPeakRSS(b *testing.B, pid int) {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		b.Fatalf("resetting the peak RSS of process %d: %v", pid, err)
	}
}

// procStatusMiB reads one of the kB fields of /proc/<pid>/status, in MiB.
func procStatusMiB(b *testing.B, pid int, field string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kib, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kib / 1024
		}
	}
	return 0
}

// BenchmarkQuotas10k holds 10,000 Checkpoints in 100 namespaces under 20 quotas. It
// measures the time from applying a quota until every archive over its limit is gone,
// and the status writes per quota while 50 new archives arrive each second.
func BenchmarkQuotas10k(b *testing.B) {
	for range b.N {
		bed := newBenchBed(b)
		c := bed.env.Client
		ctx := context.Background()
		nss := bed.namespaces(b, 100, "tenk")
		var quotas []client.Object
		for i := range 10 {
			quotas = append(quotas, builder.Quota("default", nss[i*10]).Total(200, "").PerPod(50, "").Obj())
		}
		for i := range 5 {
			quotas = append(quotas, builder.Quota("app", nss[i*10+1]).ContainerNames("app").PerContainer(10, "").Obj())
		}
		for i := range 4 {
			quotas = append(quotas, builder.Quota("tier", nss[i*10+2]).PodSelector(map[string]string{"tier": "cache"}).PerPod(20, "").Obj())
		}
		for _, q := range quotas {
			if err := c.Create(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
		bed.startManager(b)
		apiserver := bed.apiserverPID(b)
		rss0 := procRSSMiB(b, apiserver)

		now := time.Now()
		type job struct {
			ns, pod, ctr string
			at           time.Time
		}
		jobs := make(chan job)
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for j := range jobs {
					benchCheckpoint(b, c, j.ns, j.pod, j.ctr, j.at)
				}
			})
		}
		for _, ns := range nss {
			for p := range 10 {
				for _, ctr := range []string{"app", "sidecar"} {
					for i := range 5 {
						jobs <- job{ns, fmt.Sprintf("pod-%d", p), ctr, now.Add(-time.Duration(10-i) * time.Minute)}
					}
				}
			}
		}
		close(jobs)
		wg.Wait()
		b.ReportMetric(time.Since(now).Seconds(), "s-create-10000")
		waitFor(b, 2*time.Minute, 200*time.Millisecond, "usage of 10,000 Checkpoints", func() bool {
			q := &cqv1.CheckpointQuota{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: nss[90], Name: "default"}, q); err != nil {
				return false
			}
			u := q.Status.Used["total.checkpoints"]
			return u.Value() == 100
		})
		b.ReportMetric(procRSSMiB(b, apiserver)-rss0, "apiserver-rss-MiB-growth-10000")

		t0 := time.Now()
		cq := builder.ClusterQuota("tenk").NamespaceSelector(map[string]string{"bench": "tenk"}).PerContainer(3, "").Obj()
		if err := c.Create(ctx, cq); err != nil {
			b.Fatal(err)
		}
		// 3 per container, except the app containers of the 5 namespaces whose quota
		// naming them allows 10: they keep their 5.
		const want = 95*10*2*3 + 5*10*(5+3)
		waitFor(b, 5*time.Minute, 100*time.Millisecond, "6,100 Checkpoints left", func() bool {
			return countCheckpoints(b, c) == want
		})
		b.ReportMetric(time.Since(t0).Seconds(), "s-apply-to-limits-hold")

		// 50 new archives a second for 10 seconds, spread over the namespaces.
		before := statusWrites(b)
		const seconds = 10
		tick := time.NewTicker(20 * time.Millisecond)
		start := time.Now()
		for i := range 50 * seconds {
			<-tick.C
			ns := nss[(i*7)%len(nss)]
			benchCheckpoint(b, c, ns, fmt.Sprintf("pod-%d", i%10), "app", time.Now())
		}
		tick.Stop()
		time.Sleep(2 * time.Second) // let the last coalesced writes land
		elapsed := time.Since(start).Seconds()
		after := statusWrites(b)
		maxRate, total := 0.0, 0.0
		for k, v := range after {
			rate := (v - before[k]) / elapsed
			total += v - before[k]
			if rate > maxRate {
				maxRate = rate
			}
		}
		b.ReportMetric(maxRate, "max-status-writes/s/quota")
		b.ReportMetric(total/elapsed/float64(len(quotas)+1), "mean-status-writes/s/quota")
	}
}

// countLive counts the Checkpoints that are not being deleted.
func countLive(b *testing.B, c client.Client) int {
	benchLists.Add(1)
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(cqv1.GroupVersion.WithKind("CheckpointList"))
	if err := c.List(context.Background(), list); err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, m := range list.Items {
		if m.DeletionTimestamp.IsZero() {
			n++
		}
	}
	return n
}

func countFiles(dir string) int {
	f, err := os.Open(dir)
	if err != nil {
		return -1
	}
	defer func() { _ = f.Close() }()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return -1
	}
	return len(names)
}

// benchCheckpoint publishes a Checkpoint as an agent would, without a finalizer.
func benchCheckpoint(b *testing.B, c client.Client, ns, pod, ctr string, at time.Time) {
	name := fmt.Sprintf("%s-%s-%d", pod, ctr, at.UnixNano())
	obj := builder.Checkpoint(name, ns).Of(pod, "uid-"+ns+"-"+pod, ctr).
		On("node-a", "/var/lib/kubelet/checkpoints", fmt.Sprintf("checkpoint-%s_%s-%s-%s.tar", pod, ns, ctr, at.UTC().Format(time.RFC3339))).
		Size(72<<10, "72Ki").At(metav1.NewTime(at)).Obj()
	if err := c.Create(context.Background(), obj); err != nil {
		b.Error(err)
	}
}

// storedSize is the size of one Checkpoint as the apiserver stores it: compact JSON,
// managedFields included.
func storedSize(b *testing.B, c client.Client) float64 {
	benchLists.Add(1)
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(cqv1.GroupVersion.WithKind("CheckpointList"))
	if err := c.List(context.Background(), list, client.Limit(1)); err != nil || len(list.Items) == 0 {
		b.Fatalf("listing one Checkpoint: %v", err)
	}
	data, err := json.Marshal(list.Items[0].Object)
	if err != nil {
		b.Fatal(err)
	}
	return float64(len(data))
}

// statusWrites reads the status writes per quota from the manager's metrics.
func statusWrites(b *testing.B) map[string]float64 {
	families, err := scrapeMetrics()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "checkpointquota_status_writes_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				key += l.GetValue() + "/"
			}
			out[key] = m.GetCounter().GetValue()
		}
	}
	return out
}
