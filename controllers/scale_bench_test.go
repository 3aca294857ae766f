package controllers_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// The stream of BenchmarkScale: 20 archives a second for 30 seconds, each putting its
// container over its limit; one in 20 is a file on a node with a real agent.
const (
	streamRate    = 20
	streamSeconds = 30
	realEvery     = 20
)

// BenchmarkScale is the cluster we cannot rent, on one machine (make bench-scale): 1,000
// Nodes, 30,000 pods (objects only, bound to the nodes), 100,000 Checkpoints (10 nodes with
// real agents over temp directories of real archives; for the other 990 a load generator
// creates what their agents would, through the agent's own code) and 300 quotas of both
// kinds. It then starts the manager binary and measures its peak RSS, the time until every
// quota is Ready, the full recompute time, and the lag of pruning while 20 archives a second
// arrive, each putting its container over its limit; and the kube-apiserver's RSS and CPU.
// It runs only with CHECKPOINT_QUOTA_BENCH_SCALE set: 1 for the full scale, or a fraction.
func BenchmarkScale(b *testing.B) {
	l := layoutFromEnv(b)
	bin := b.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "./cmd/manager", "./cmd/node-agent")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	for range b.N {
		bed := newBenchBed(b)
		cfg := rest.CopyConfig(bed.env.Config)
		cfg.QPS, cfg.Burst = 5000, 10000
		c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme})
		if err != nil {
			b.Fatal(err)
		}
		apiserver := bed.apiserverPID(b)
		w := &scaleWorld{l: l, c: c, dirs: map[string]string{}, files: map[string]string{}, expected: map[string]*cqv1.Checkpoint{}}
		groups := max(1, l.namespaces/4-1)

		// The cluster, the quotas and the archives, before the manager.
		t0, api0 := time.Now(), procCPU(b, apiserver)
		w.createCluster(b, groups)
		quotas := w.createQuotas(b, groups)
		for i := range l.agents {
			w.dirs[nodeName(i)] = b.TempDir()
		}
		tCluster := time.Since(t0)
		writes0 := checkpointWrites(b, cfg)
		t1 := time.Now()
		w.createArchives(b, time.Now())
		var agents []int
		for i := range l.agents {
			agents = append(agents, bed.process(b, filepath.Join(bin, "node-agent"), "--kubeconfig", bed.env.Kubeconfig, "--node-name", nodeName(i),
				"--checkpoint-dir", w.dirs[nodeName(i)], "--state-dir", b.TempDir(), "--metrics-bind-address=0", "--health-probe-bind-address=0"))
		}
		waitFor(b, 10*time.Minute, time.Second, "the real agents' archives published", func() bool {
			return len(realCheckpoints(b, c, l)) == len(w.files)
		})
		tArchives := time.Since(t1)
		writes1 := quietWrites(b, cfg)
		w.checkAgentsPublishedAsGenerator(b)
		if n := countCheckpoints(b, c); n != w.archives {
			b.Fatalf("%d Checkpoints, want %d", n, w.archives)
		}
		apiSetup := procCPU(b, apiserver) - api0
		b.Logf("created %d nodes, %d namespaces, %d pods, %d quotas in %s; %d Checkpoints (%d by %d real agents) in %s",
			l.nodes, l.namespaces, l.pods, quotas, tCluster.Round(time.Second), w.archives, len(w.files), l.agents, tArchives.Round(time.Second))

		// The manager, from its start until every quota is Ready.
		dels := watchDeletions(b, cfg)
		// The apiserver's peak while the bench creates the cluster (100,000 creates in a minute
		// or two, far faster than any cluster's agents publish) apart from its peak while the
		// manager runs.
		apiSetupPeak := procPeakRSSMiB(b, apiserver)
		resetPeakRSS(b, apiserver)
		metricsAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
		metricsURL := "http://" + metricsAddr + "/metrics"
		api1, tm := procCPU(b, apiserver), time.Now()
		managerPprof := profileAddr(b)
		args := []string{"--kubeconfig", bed.env.Kubeconfig, "--enable-webhooks=false",
			"--metrics-bind-address=" + metricsAddr, "--health-probe-bind-address=0", "--pprof-bind-address=" + managerPprof}
		// The manager's heap soft limit as a container's memory limit would set it (--memory-limit).
		if limit := os.Getenv("BENCH_MANAGER_MEMORY_LIMIT"); limit != "" {
			args = append(args, "--memory-limit="+limit)
		}
		manager := bed.process(b, filepath.Join(bin, "manager"), args...)
		startProfiled := profile(b, managerPprof, "scale-manager-start", 20*time.Second)
		var firstReady time.Duration
		waitFor(b, 10*time.Minute, 250*time.Millisecond, "every quota Ready", func() bool {
			n := readyQuotas(b, c)
			if n > 0 && firstReady == 0 {
				firstReady = time.Since(tm)
			}
			return n == quotas
		})
		ready := time.Since(tm)
		apiStart := procCPU(b, apiserver) - api1
		time.Sleep(5 * time.Second) // the passes that the status writes trigger
		startPasses := scrapeHistogram(b, metricsURL, "checkpointquota_recompute_seconds")
		prunedAtStart := dels.count()
		rssReady := procRSSMiB(b, manager)
		heapProfile(b, managerPprof, "scale-manager-heap-ready")

		// The stream.
		writes2, every2 := checkpointWrites(b, cfg), apiWrites(b, cfg, anyResource)
		api2, mcpu2 := procCPU(b, apiserver), procCPU(b, manager)
		startProfiled()
		profile(b, managerPprof, "scale-manager-stream", streamSeconds*time.Second)
		lags, missing := w.stream(b, dels)
		heapProfile(b, managerPprof, "scale-manager-heap-end")
		apiStream, mcpuStream := procCPU(b, apiserver)-api2, procCPU(b, manager)-mcpu2
		writes3 := quietWrites(b, cfg)
		every3 := apiWrites(b, cfg, anyResource)
		allPasses := scrapeHistogram(b, metricsURL, "checkpointquota_recompute_seconds")
		arrivals := streamRate * streamSeconds
		extra := dels.count() - prunedAtStart - (arrivals - missing)

		published, byPublish := testenv.Between(writes0, writes1)
		streamed, byStream := testenv.Between(writes2, writes3)
		agentRSS := 0.0
		for _, pid := range agents {
			agentRSS = max(agentRSS, procPeakRSSMiB(b, pid))
		}
		b.ReportMetric(procPeakRSSMiB(b, manager), "peak-rss-MiB-manager")
		b.ReportMetric(rssReady, "rss-MiB-manager-at-ready")
		b.ReportMetric(ready.Seconds(), "s-start-to-every-quota-ready")
		b.ReportMetric(firstReady.Seconds(), "s-start-to-first-quota-ready")
		b.ReportMetric(allPasses.mean(), "s-recompute-mean")
		b.ReportMetric(allPasses.count, "recompute-passes")
		b.ReportMetric(percentile(lags, 50).Seconds(), "s-prune-lag-p50")
		b.ReportMetric(percentile(lags, 99).Seconds(), "s-prune-lag-p99")
		b.ReportMetric(float64(missing), "victims-not-pruned")
		b.ReportMetric(float64(extra+prunedAtStart), "unexpected-prunes")
		b.ReportMetric(procRSSMiB(b, apiserver), "rss-MiB-apiserver")
		b.ReportMetric(procPeakRSSMiB(b, apiserver), "peak-rss-MiB-apiserver")
		b.ReportMetric(apiSetupPeak, "peak-rss-MiB-apiserver-setup")
		b.ReportMetric(apiSetup, "cpu-s-apiserver-setup")
		b.ReportMetric(apiStart, "cpu-s-apiserver-manager-start")
		b.ReportMetric(apiStream/float64(arrivals)*1000, "cpu-ms-apiserver/arrival")
		b.ReportMetric(mcpuStream/float64(arrivals)*1000, "cpu-ms-manager/arrival")
		b.ReportMetric(published/float64(w.archives), "api-writes/archive-published")
		b.ReportMetric(streamed/float64(arrivals), "api-writes/archive-arrived-and-pruned")
		b.ReportMetric(agentRSS, "peak-rss-MiB-agent-max")
		b.Logf("manager: peak RSS %.0f MiB (%.0f at Ready), the first quota Ready %.1f s after start and every quota %.1f s after, CPU %.1f s until the stream",
			procPeakRSSMiB(b, manager), rssReady, firstReady.Seconds(), ready.Seconds(), mcpu2)
		b.Logf("recompute: until Ready and 5 s after %s; whole run %s", startPasses, allPasses)
		b.Logf("stream of %d archives at %d/s: prune lag p50 %s, p99 %s, max %s; %d victims not pruned, %d unexpected prunes; manager %.2f ms CPU per archive",
			arrivals, streamRate, percentile(lags, 50).Round(time.Millisecond), percentile(lags, 99).Round(time.Millisecond),
			percentile(lags, 100).Round(time.Millisecond), missing, extra+prunedAtStart, mcpuStream/float64(arrivals)*1000)
		b.Logf("kube-apiserver: RSS %.0f MiB (peak %.0f since the manager's start, %.0f while the bench created everything), CPU %.0f s to create everything, %.1f s from manager start to Ready, %.1f ms per streamed archive",
			procRSSMiB(b, apiserver), procPeakRSSMiB(b, apiserver), apiSetupPeak, apiSetup, apiStart, apiStream/float64(arrivals)*1000)
		b.Logf("API writes on Checkpoints: publishing %d %v; stream of %d (publish and prune) %v", w.archives, byPublish, arrivals, byStream)
		b.Logf("API writes of every resource during the stream, per arrival: %s", perArrival(every2, every3, arrivals))
	}
}

// realCheckpoints lists the Checkpoints of the nodes with a real agent.
func realCheckpoints(b *testing.B, c client.Client, l scaleLayout) []cqv1.Checkpoint {
	var out []cqv1.Checkpoint
	for i := range l.agents {
		var list cqv1.CheckpointList
		if err := c.List(context.Background(), &list, client.MatchingFields{cqv1.FieldArchiveNode: nodeName(i)}); err != nil {
			b.Fatal(err)
		}
		out = append(out, list.Items...)
	}
	return out
}

// readyQuotas counts the quotas whose status and Ready condition are true for their
// current generation.
func readyQuotas(b *testing.B, c client.Client) int {
	ctx := context.Background()
	var cqs cqv1.CheckpointQuotaList
	var ccqs cqv1.ClusterCheckpointQuotaList
	if err := c.List(ctx, &cqs); err != nil {
		b.Fatal(err)
	}
	if err := c.List(ctx, &ccqs); err != nil {
		b.Fatal(err)
	}
	ready := func(gen int64, st *cqv1.QuotaStatus) bool {
		cond := meta.FindStatusCondition(st.Conditions, cqv1.ConditionReady)
		return st.ObservedGeneration == gen && cond != nil && cond.Status == "True" && cond.ObservedGeneration == gen
	}
	n := 0
	for i := range cqs.Items {
		if ready(cqs.Items[i].Generation, &cqs.Items[i].Status) {
			n++
		}
	}
	for i := range ccqs.Items {
		if ready(ccqs.Items[i].Generation, &ccqs.Items[i].Status) {
			n++
		}
	}
	return n
}

// checkAgentsPublishedAsGenerator compares what the real agents published with what the
// load generator would have created for the same archives: they must be the same objects.
func (w *scaleWorld) checkAgentsPublishedAsGenerator(b *testing.B) {
	published := realCheckpoints(b, w.c, w.l)
	for i := range published {
		got := &published[i]
		want := w.expected[got.Name]
		if want == nil {
			b.Fatalf("a real agent published %s/%s, which the generator would have named otherwise", got.Namespace, got.Name)
		}
		if got.Namespace != want.Namespace || !equality.Semantic.DeepEqual(got.Labels, want.Labels) || !equality.Semantic.DeepEqual(got.Spec, want.Spec) ||
			len(got.Finalizers) != 0 || len(got.OwnerReferences) != 0 {
			b.Fatalf("a real agent published %s/%s as\n%+v %+v\nthe load generator would create\n%+v %+v", got.Namespace, got.Name,
				got.Labels, *got.Spec.Archive, want.Labels, *want.Spec.Archive)
		}
	}
}

// arrival is one archive of the stream, and the oldest archive of its container, which
// pruning should take.
type arrival struct {
	name, victim string
	real         bool
	// created is when the load generator's Create returned.
	created time.Time
}

// stream publishes streamRate archives a second for streamSeconds, each of the app
// container of another pod, which then holds one archive over its limit, and returns the
// lag from each arrival to its victim's deletion, sorted, and how many victims were not
// pruned. An arrival on a node with a real agent is a file: its lag starts when the
// agent's Checkpoint shows on the watch.
func (w *scaleWorld) stream(b *testing.B, dels *deletions) ([]time.Duration, int) {
	var gen, onAgents []*scalePod
	for _, i := range rand.New(rand.NewPCG(1, 2)).Perm(len(w.pods)) {
		if p := w.pods[i]; p.real {
			onAgents = append(onAgents, p)
		} else {
			gen = append(gen, p)
		}
	}
	n := streamRate * streamSeconds
	arrivals := make([]arrival, n)
	tick := time.NewTicker(time.Second / streamRate)
	var wg sync.WaitGroup
	for j := range n {
		<-tick.C
		p := gen[j%len(gen)]
		if j%realEvery == realEvery-1 && len(onAgents) > 0 {
			p = onAgents[(j/realEvery)%len(onAgents)]
		}
		victim := p.app[0]
		p.app = p.app[1:]
		wg.Go(func() {
			name := w.publish(b, p, "app", time.Now())
			arrivals[j] = arrival{name: name, victim: victim, real: p.real, created: time.Now()}
		})
	}
	tick.Stop()
	wg.Wait()
	deadline := time.Now().Add(time.Minute)
	pruned := func(a arrival) bool { _, ok := dels.deletedAt(a.victim); return ok }
	for time.Now().Before(deadline) && !allOf(arrivals, pruned) {
		time.Sleep(100 * time.Millisecond)
	}
	var lags []time.Duration
	missing := 0
	for _, a := range arrivals {
		start, seen := a.created, true
		if a.real {
			start, seen = dels.addedAt(a.name)
		}
		gone, ok := dels.deletedAt(a.victim)
		if !ok || !seen {
			missing++
			continue
		}
		lags = append(lags, max(gone.Sub(start), 0))
	}
	// The agents remove their victims' files.
	waitFor(b, time.Minute, 200*time.Millisecond, "the real agents to remove the pruned archives", func() bool {
		for _, a := range arrivals {
			if _, err := os.Lstat(w.files[a.victim]); a.real && err == nil {
				return false
			}
		}
		return true
	})
	return sortDurations(lags), missing
}

func allOf[T any](s []T, pred func(T) bool) bool {
	return !slices.ContainsFunc(s, func(v T) bool { return !pred(v) })
}

// perArrival formats the writes between two scrapes of apiWrites, per arrival, largest first.
func perArrival(before, after map[string]float64, arrivals int) string {
	type kv struct {
		k string
		v float64
	}
	var all []kv
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			all = append(all, kv{k, d / float64(arrivals)})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
	var out []string
	for _, e := range all {
		out = append(out, fmt.Sprintf("%s %.2f", e.k, e.v))
	}
	return strings.Join(out, ", ")
}
