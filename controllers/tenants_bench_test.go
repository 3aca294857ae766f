package controllers_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// The tenants benchmark's world (issue 29, item 5): 10,000 namespaces and 5,000 quotas with
// every list and string at its bound (docs/admission.md, "Bounds"): one CheckpointQuota in
// each of 4,980 namespaces and 20 ClusterCheckpointQuotas.
// CHECKPOINT_QUOTA_BENCH_TENANTS_SCALE below 1 builds that fraction of the namespaces and
// quotas, for a quick look.
var (
	tenantNamespaces    = 10000
	tenantQuotas        = 4980
	tenantClusterQuotas = 20
)

const tenantProbes = 100

func scaleTenants(b *testing.B) {
	f, err := strconv.ParseFloat(os.Getenv("CHECKPOINT_QUOTA_BENCH_TENANTS_SCALE"), 64)
	if err != nil || f <= 0 || f >= 1 {
		return
	}
	tenantNamespaces, tenantQuotas = max(int(float64(tenantNamespaces)*f), 10), max(int(float64(tenantQuotas)*f), 5)
	b.Logf("scaled by %g: %d namespaces, %d CheckpointQuotas", f, tenantNamespaces, tenantQuotas)
}

// BenchmarkTenants measures what tenants' quotas cost the manager, before and after, on one
// control plane: the manager built from this tree ("after") and from the git revision
// CHECKPOINT_QUOTA_BENCH_BASE ("before"; `make bench-tenants` sets it), each as its real
// binary with its webhooks and controllers. For each it reports the admission latency of a
// ClusterCheckpointQuota and of a CheckpointQuota (server-side dry-run creates through the
// kube-apiserver and the manager's webhooks, p50 and p99 of 100 each), and the growth of the
// manager's RSS and live heap (after a collection) from the namespaces alone to the
// namespaces and the 5,000 quotas, and the CPU each took until it settled. Every manager
// runs with the heap limit the shipped Deployment gives it (shippedHeapLimit);
// CHECKPOINT_QUOTA_BENCH_TENANTS_GOGC gives them a GOGC as well, for a what-if. It runs
// only when CHECKPOINT_QUOTA_BENCH_BASE is set.
func BenchmarkTenants(b *testing.B) {
	base := os.Getenv("CHECKPOINT_QUOTA_BENCH_BASE")
	if base == "" {
		b.Skip("set CHECKPOINT_QUOTA_BENCH_BASE to the git revision to compare with (make bench-tenants)")
	}
	scaleTenants(b)
	bins := map[string]string{"after": buildManager(b, testenv.RepoRoot()), "before": buildManager(b, checkout(b, base))}
	for range b.N {
		bed := newTenantsBed(b)
		cfg := rest.CopyConfig(bed.env.Config)
		cfg.QPS, cfg.Burst = 2000, 4000
		c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		parallel(tenantNamespaces, func(i int) {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tenantNamespace(i), Labels: map[string]string{"tenant": strconv.Itoa(i)}}}
			if err := c.Create(context.Background(), ns); err != nil {
				b.Error(err)
			}
		})
		b.Logf("created %d namespaces in %s", tenantNamespaces, time.Since(t0).Round(time.Second))

		empty := map[string]managerFigures{}
		for _, which := range []string{"before", "after"} {
			empty[which] = bed.measureManager(b, c, bins[which], "namespaces-"+which)
		}
		t1 := time.Now()
		creator := bed.startManager(b, bins["after"], "creator")
		var retried atomic.Int32
		create := func(obj client.Object) {
			for range 5 {
				err := c.Create(context.Background(), obj)
				if err == nil || apierrors.IsAlreadyExists(err) {
					return
				}
				if !apierrors.IsInternalError(err) && !apierrors.IsTimeout(err) && !apierrors.IsServerTimeout(err) {
					b.Error(err)
					return
				}
				retried.Add(1) // a webhook call timed out under the load of 32 writers: apply again
			}
			b.Errorf("creating %s: still failing after 5 attempts", obj.GetName())
		}
		parallel(tenantClusterQuotas, func(i int) { create(maximalClusterQuota(fmt.Sprintf("tenants-%02d", i), i)) })
		parallel(tenantQuotas, func(i int) { create(maximalQuota("maximal", tenantNamespace(i), i)) })
		// The creator writes every new quota's first status; stopped before it is done, it
		// left the rest to whichever manager was measured first (3,195 writes in one run),
		// which then settled under that load and the other did not.
		waitSettled(b, creator)
		creator.stop()
		b.Logf("created %d maximal CheckpointQuotas and %d maximal ClusterCheckpointQuotas in %s (%d bytes each as stored; %d creates retried after a timeout)",
			tenantQuotas, tenantClusterQuotas, time.Since(t1).Round(time.Second), storedQuotaSize(b, c), retried.Load())

		for _, which := range []string{"before", "after"} {
			full := bed.measureManager(b, c, bins[which], "quotas-"+which)
			e := empty[which]
			b.ReportMetric(float64(full.cluster.p99.Milliseconds()), "ms-p99-cluster-admission-"+which)
			b.ReportMetric(float64(full.cluster.p50.Milliseconds()), "ms-p50-cluster-admission-"+which)
			b.ReportMetric(float64(full.namespaced.p99.Milliseconds()), "ms-p99-namespaced-admission-"+which)
			b.ReportMetric(float64(full.namespaced.p50.Milliseconds()), "ms-p50-namespaced-admission-"+which)
			b.ReportMetric(float64(full.settledCluster.p99.Milliseconds()), "ms-p99-cluster-admission-settled-"+which)
			b.ReportMetric(float64(full.settledNamespaced.p99.Milliseconds()), "ms-p99-namespaced-admission-settled-"+which)
			b.ReportMetric(float64(full.clusterServed.Milliseconds()), "ms-mean-cluster-webhook-"+which)
			b.ReportMetric(float64(full.namespacedServed.Milliseconds()), "ms-mean-namespaced-webhook-"+which)
			b.ReportMetric(full.rss-e.rss, "MiB-rss-growth-"+which)
			b.ReportMetric(full.heap-e.heap, "MiB-live-heap-growth-"+which)
			b.ReportMetric(full.peak-e.peak, "MiB-peak-rss-growth-"+which)
			b.ReportMetric(full.cpu, "s-cpu-until-settled-"+which)
			b.Logf("%s: cluster quota admission p50 %s p99 %s (%d failed; its validating webhook %s on average), namespaced p50 %s p99 %s (%d failed; webhook %s); RSS %.0f -> %.0f MiB (peak %.0f -> %.0f), live heap %.0f -> %.0f MiB; CPU until settled %.1f -> %.1f s",
				which, full.cluster.p50, full.cluster.p99, full.cluster.failed, full.clusterServed, full.namespaced.p50, full.namespaced.p99, full.namespaced.failed,
				full.namespacedServed, e.rss, full.rss, e.peak, full.peak, e.heap, full.heap, e.cpu, full.cpu)
			b.Logf("%s, settled: cluster quota admission p50 %s p99 %s (%d failed), namespaced p50 %s p99 %s (%d failed); %.0f status writes until settled, %.0f while timed", which,
				full.settledCluster.p50, full.settledCluster.p99, full.settledCluster.failed,
				full.settledNamespaced.p50, full.settledNamespaced.p99, full.settledNamespaced.failed, full.writesSettled, full.writesDuringSettled)
		}
		validating, alone := apiserverAlone(b, c, bins["after"], bed)
		b.ReportMetric(float64(validating.cluster.p99.Milliseconds()), "ms-p99-cluster-admission-validating-only")
		b.ReportMetric(float64(validating.namespaced.p99.Milliseconds()), "ms-p99-namespaced-admission-validating-only")
		b.ReportMetric(float64(alone.cluster.p99.Milliseconds()), "ms-p99-cluster-admission-no-webhooks")
		b.ReportMetric(float64(alone.namespaced.p99.Milliseconds()), "ms-p99-namespaced-admission-no-webhooks")
		b.Logf("the validating webhooks alone (this tree's manager): cluster quota admission p50 %s p99 %s, namespaced p50 %s p99 %s",
			validating.cluster.p50, validating.cluster.p99, validating.namespaced.p50, validating.namespaced.p99)
		b.Logf("without the webhooks: cluster quota admission p50 %s p99 %s, namespaced p50 %s p99 %s",
			alone.cluster.p50, alone.cluster.p99, alone.namespaced.p50, alone.namespaced.p99)
	}
}

// apiserverAlone times the same dry-run creates, with this tree's manager, first with the
// mutating webhook configuration deleted (the validating webhooks alone: what defaulting
// by the webhook costs), then with both deleted: what the kube-apiserver's own part of a
// maximal quota's admission costs (decoding, the schema's and its CEL rules' validation),
// the floor under the figures with the webhooks. The settled manager is still running
// for the first.
func apiserverAlone(b *testing.B, c client.Client, bin string, bed *tenantsBed) (validating, alone managerFigures) {
	m := bed.startManager(b, bin, "apiserver-alone")
	defer m.stop()
	time.Sleep(30 * time.Second) // its informers synced and its first pass done
	drop := func(obj client.Object) {
		if err := c.Delete(context.Background(), obj); err != nil {
			b.Fatal(err)
		}
		time.Sleep(2 * time.Second) // the kube-apiserver's webhook configurations follow its watch
	}
	times := func(seed int) (f managerFigures) {
		f.cluster = timeAdmissions(b, c, func(k int) client.Object {
			return maximalClusterQuota(fmt.Sprintf("probe-%03d", k), seed+k)
		})
		f.namespaced = timeAdmissions(b, c, func(k int) client.Object {
			return maximalQuota(fmt.Sprintf("probe-%03d", k), tenantNamespace(k*43%tenantQuotas), 100*seed+k)
		})
		return f
	}
	drop(&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "mutating-webhook-configuration"}})
	validating = times(3000)
	drop(&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "validating-webhook-configuration"}})
	return validating, times(4000)
}

// tenantsBed is a control plane with the webhook configurations of config/webhook, pointed
// at whichever manager binary runs.
type tenantsBed struct {
	*benchBed
	// heapLimit is the Go heap's soft limit of every manager the bench runs (shippedHeapLimit).
	heapLimit int64
	// gcPercent, when set (CHECKPOINT_QUOTA_BENCH_TENANTS_GOGC), is the GOGC of every
	// manager the bench runs: not what the Deployment ships, a what-if of its trade of CPU
	// for memory, which the output says.
	gcPercent string
}

func newTenantsBed(b *testing.B) *tenantsBed {
	b.Helper()
	ctrl.SetLogger(logr.Discard())
	limit := shippedHeapLimit(b)
	e, err := testenv.Start(testenv.Options{Webhooks: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Stop() })
	b.Logf("every manager runs with GOMEMLIMIT=%d (%.0f MiB), as config/manager's Deployment gives it", limit, float64(limit)/(1<<20))
	gc := os.Getenv("CHECKPOINT_QUOTA_BENCH_TENANTS_GOGC")
	if gc != "" {
		b.Logf("every manager runs with GOGC=%s, which the Deployment does not set: a what-if, not the shipped manager", gc)
	}
	return &tenantsBed{benchBed: &benchBed{env: e}, heapLimit: limit, gcPercent: gc}
}

// shippedHeapLimit is the Go heap's soft limit that the manager's Deployment, as config/
// ships it, gives the manager: --memory-limit=auto (the flag's default), 90% of the
// container's memory limit (cmd/internal/memlimit, autoRatio). The bench runs the managers
// outside a container, where auto finds no limit; GOMEMLIMIT gives every manager, before
// and after alike, the one it has in the Deployment.
func shippedHeapLimit(b *testing.B) int64 {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "manager", "manager.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	var d appsv1.Deployment
	if err := yaml.Unmarshal(data, &d); err != nil {
		b.Fatal(err)
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name != "manager" {
			continue
		}
		for _, arg := range c.Args {
			if strings.HasPrefix(arg, "--memory-limit=") && arg != "--memory-limit=auto" {
				b.Fatalf("config/manager sets %s: the bench gives the managers auto's limit only", arg)
			}
		}
		limit := c.Resources.Limits.Memory()
		if limit.IsZero() {
			b.Fatal("config/manager's manager container has no memory limit")
		}
		return limit.Value() * 9 / 10
	}
	b.Fatal("config/manager's Deployment has no container named manager")
	return 0
}

// runningManager is a manager process of the bench.
type runningManager struct {
	cmd              *exec.Cmd
	metrics, profile string
}

func (m *runningManager) stop() {
	_ = m.cmd.Process.Signal(os.Interrupt)
	_ = m.cmd.Wait()
}

// startManager runs a manager binary with its webhooks and controllers, and waits until its
// webhook server answers; name names its files in BENCH_PROFILE_DIR.
func (bed *tenantsBed) startManager(b *testing.B, bin, name string) *runningManager {
	probe := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
	m := &runningManager{metrics: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b)), profile: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))}
	m.cmd = exec.Command(bin, "--kubeconfig", bed.env.Kubeconfig,
		"--webhook-port", strconv.Itoa(bed.env.Webhook.LocalServingPort), "--webhook-cert-dir", bed.env.Webhook.LocalServingCertDir,
		"--metrics-bind-address="+m.metrics, "--health-probe-bind-address="+probe, "--pprof-bind-address="+m.profile)
	m.cmd.Stderr = io.Discard
	m.cmd.Env = append(os.Environ(), fmt.Sprintf("GOMEMLIMIT=%d", bed.heapLimit))
	if bed.gcPercent != "" {
		m.cmd.Env = append(m.cmd.Env, "GOGC="+bed.gcPercent)
	}
	if dir := os.Getenv("BENCH_PROFILE_DIR"); dir != "" {
		// Heap profiles that sample every 4 KiB allocated rather than every 512 KiB: the
		// cost per quota shows by call site. It costs the manager CPU, so the figures of a
		// profiled run are not those of a plain one. The runtime's trace of each collection
		// (gctrace: the heap before and after it, and its goal) goes with the manager's log
		// to name-stderr.log: how far the start takes the heap.
		m.cmd.Env = append(m.cmd.Env, "GODEBUG=memprofilerate=4096,gctrace=1")
		log, err := os.Create(filepath.Join(dir, name+"-stderr.log"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = log.Close() })
		m.cmd.Stderr = log
	}
	if err := m.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	waitFor(b, 2*time.Minute, 200*time.Millisecond, "the manager ready", func() bool {
		resp, err := http.Get("http://" + probe + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return m
}

// managerFigures are what one manager binary costs in one world.
type managerFigures struct {
	// peak is the RSS's peak until it was read (VmHWM): how far the start took it.
	rss, peak, heap float64
	// cpu is the CPU time the manager took from its start until it settled, in seconds.
	cpu                 float64
	cluster, namespaced latencies
	// settledCluster and settledNamespaced are timed again once the manager has settled:
	// the first are timed while it starts (its informers sync, its first pass and every
	// quota's first status write compete for the two cores).
	settledCluster, settledNamespaced latencies
	// clusterServed and namespacedServed are the validating webhooks' mean time to answer,
	// as the manager measures it: the admission without the kube-apiserver's part.
	clusterServed, namespacedServed time.Duration
	// writesSettled are the status writes the manager made until it settled, and
	// writesDuringSettled those while the settled admissions were timed.
	writesSettled, writesDuringSettled float64
}

// waitSettled waits until the manager has written no status for 10 s.
func waitSettled(b *testing.B, m *runningManager) {
	last, quiet := statusWritesTotal(b, m), 0
	waitFor(b, 5*time.Minute, 2*time.Second, "the manager's status writes done", func() bool {
		now := statusWritesTotal(b, m)
		if now == last {
			quiet++
		} else {
			quiet = 0
		}
		last = now
		return quiet >= 5
	})
}

// statusWritesTotal is the number of quota status writes the manager made, from its
// checkpointquota_status_writes_total series.
func statusWritesTotal(b *testing.B, m *runningManager) float64 {
	resp, err := http.Get("http://" + m.metrics + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var total float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "checkpointquota_status_writes_total{"); ok {
			if i := strings.LastIndexByte(line, ' '); i >= 0 {
				v, _ := strconv.ParseFloat(line[i+1:], 64)
				total += v
			}
		}
	}
	return total
}

// webhookMean is the mean time the manager took to answer the webhook at path, from its
// controller_runtime_webhook_latency_seconds histogram.
func webhookMean(b *testing.B, m *runningManager, path string) time.Duration {
	resp, err := http.Get("http://" + m.metrics + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var sum, count float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	label := `{webhook="` + path + `"} `
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "controller_runtime_webhook_latency_seconds_sum"+label); ok {
			sum, _ = strconv.ParseFloat(v, 64)
		}
		if v, ok := strings.CutPrefix(sc.Text(), "controller_runtime_webhook_latency_seconds_count"+label); ok {
			count, _ = strconv.ParseFloat(v, 64)
		}
	}
	if count == 0 {
		return 0
	}
	return time.Duration(sum / count * float64(time.Second))
}

// measureManager starts a manager, times admissions, lets it settle (its RSS steady over
// 15 s), reads its RSS and its live heap after a collection, and times admissions again;
// then stops it. Admissions are timed in both worlds, so that what serving them costs is in
// both figures.
func (bed *tenantsBed) measureManager(b *testing.B, c client.Client, bin, name string) (f managerFigures) {
	m := bed.startManager(b, bin, name)
	defer m.stop()
	pid := m.cmd.Process.Pid
	f.cluster = timeAdmissions(b, c, func(k int) client.Object {
		return maximalClusterQuota(fmt.Sprintf("probe-%03d", k), 1000+k)
	})
	f.namespaced = timeAdmissions(b, c, func(k int) client.Object {
		return maximalQuota(fmt.Sprintf("probe-%03d", k), tenantNamespace(k*37%tenantQuotas), 100000+k)
	})
	f.clusterServed = webhookMean(b, m, "/validate-checkpointquota-dev-v1alpha1-clustercheckpointquota")
	f.namespacedServed = webhookMean(b, m, "/validate-checkpointquota-dev-v1alpha1-checkpointquota")
	last, steady := procRSSMiB(b, pid), 0
	waitFor(b, 5*time.Minute, 5*time.Second, "the manager's RSS steady", func() bool {
		now := procRSSMiB(b, pid)
		if now-last < 1 && last-now < 1 {
			steady++
		} else {
			steady = 0
		}
		last = now
		return steady >= 3
	})
	f.rss, f.peak, f.cpu = procRSSMiB(b, pid), procPeakRSSMiB(b, pid), procCPU(b, pid)
	f.heap = liveHeapMiB(b, m, name+"-heap")
	f.writesSettled = statusWritesTotal(b, m)
	defer func() { f.writesDuringSettled = statusWritesTotal(b, m) - f.writesSettled }()
	// With BENCH_PROFILE_DIR, CPU profiles of both processes while the settled cluster
	// quotas are admitted.
	apiserverProfile(b, bed.benchBed, name+"-apiserver-cpu", 15*time.Second)
	waitProfile := profile(b, m.profile, name+"-cpu", 15*time.Second)
	defer waitProfile()
	f.settledCluster = timeAdmissions(b, c, func(k int) client.Object {
		return maximalClusterQuota(fmt.Sprintf("probe-%03d", k), 2000+k)
	})
	f.settledNamespaced = timeAdmissions(b, c, func(k int) client.Object {
		return maximalQuota(fmt.Sprintf("probe-%03d", k), tenantNamespace(k*41%tenantQuotas), 200000+k)
	})
	return f
}

// latencies are the p50 and p99 of a series of admissions, and how many failed.
type latencies struct {
	p50, p99 time.Duration
	failed   int
}

// timeAdmissions sends tenantProbes server-side dry-run creates, one after another, after
// two that warm the caches, and times each from the client.
func timeAdmissions(b *testing.B, c client.Client, obj func(k int) client.Object) latencies {
	var l latencies
	var took []time.Duration
	var failed atomic.Int32
	for k := range tenantProbes + 2 {
		t := time.Now()
		err := c.Create(context.Background(), obj(k), client.DryRunAll)
		if k < 2 {
			continue
		}
		took = append(took, time.Since(t))
		if err != nil {
			failed.Add(1)
			if failed.Load() == 1 {
				b.Logf("admission failed: %v", err)
			}
		}
	}
	slices.Sort(took)
	l.p50, l.p99, l.failed = percentile(took, 50), percentile(took, 99), int(failed.Load())
	return l
}

// liveHeapMiB forces a collection through the manager's pprof endpoint and reads the heap
// in use from its metrics. The heap profile that the collection comes with is saved as
// BENCH_PROFILE_DIR/name.pprof when that is set (go tool pprof
// -sample_index=inuse_space).
func liveHeapMiB(b *testing.B, m *runningManager, name string) float64 {
	resp, err := http.Get("http://" + m.profile + "/debug/pprof/heap?gc=1")
	if err != nil {
		b.Fatal(err)
	}
	profile, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		b.Fatal(err)
	}
	if dir := os.Getenv("BENCH_PROFILE_DIR"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, name+".pprof"), profile, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	resp, err = http.Get("http://" + m.metrics + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f / (1 << 20)
		}
	}
	b.Fatal("the manager's /metrics has no go_memstats_heap_inuse_bytes")
	return 0
}

// storedQuotaSize is the size of one maximal CheckpointQuota as the apiserver returns it.
func storedQuotaSize(b *testing.B, c client.Client) int {
	var q cqv1.CheckpointQuota
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: tenantNamespace(0), Name: "maximal"}, &q); err != nil {
		b.Fatal(err)
	}
	q.ManagedFields = nil
	data, err := json.Marshal(&q)
	if err != nil {
		b.Fatal(err)
	}
	return len(data)
}

// buildManager builds cmd/manager of the tree at dir.
func buildManager(b *testing.B, dir string) string {
	out := filepath.Join(b.TempDir(), "manager")
	build := exec.Command("go", "build", "-o", out, "./cmd/manager")
	build.Dir = dir
	if msg, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build in %s: %v\n%s", dir, err, msg)
	}
	return out
}

// checkout writes the tree of a git revision of this repository into a new directory.
func checkout(b *testing.B, rev string) string {
	dir := b.TempDir()
	archive := exec.Command("sh", "-c", "git archive --format=tar "+rev+" | tar -x -C "+dir)
	archive.Dir = testenv.RepoRoot()
	if msg, err := archive.CombinedOutput(); err != nil {
		b.Fatalf("git archive %s: %v\n%s", rev, err, msg)
	}
	return dir
}

func tenantNamespace(i int) string { return fmt.Sprintf("tenant-%05d", i) }
