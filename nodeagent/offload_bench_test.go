package nodeagent_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/objstore"
	"github.com/checkpoint-quota/checkpoint-quota/nodeagent"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/s3server"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// BenchmarkAgentOffload runs the node-agent binary, as a node would, over a directory of
// 100 archives of 1 MiB against the test bed and the real S3 server, marks every one of its
// Checkpoints for offload as the manager does (status.offload), and reports the archives
// stored per second end to end: from the first mark until every Checkpoint has its
// status.location (uploaded, verified, recorded; the files removed after). In the same
// run, before the marks, the same files go to the store twice more from this process, 4
// in flight as the agent sends them: plain PUTs (the store's limit: bodies neither hashed
// nor checked) and objstore.Store.Upload (the agent's uploader without the agent).
// docs/offload.md, "Figures", reports it.
func BenchmarkAgentOffload(b *testing.B) { benchAgentOffload(b, 100, 1<<20) }

// BenchmarkAgentOffloadLarge is BenchmarkAgentOffload over 8 archives of 128 MiB, where the
// apiserver's few requests per archive weigh nothing beside the bytes: what one agent
// uploads in MB/s, beside the store's limit for the same files in the same run, plain and
// verified (minio-go's own multipart PUT with SHA-256 checksums, as the uploader sends).
func BenchmarkAgentOffloadLarge(b *testing.B) { benchAgentOffload(b, 8, 128<<20) }

// benchAgentOffload is BenchmarkAgentOffload over count archives of size bytes.
func benchAgentOffload(b *testing.B, count int, size int64) {
	env, bin, ns := agentBed(b, "offload")
	ctx := context.Background()
	srv, err := s3server.Start(ctx, b.TempDir())
	if errors.Is(err, s3server.ErrUnavailable) {
		b.Skip(err.Error())
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Kill)
	if err := srv.MakeBucket(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nodeagent.DefaultOrphanNamespace}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bench-store", Namespace: nodeagent.DefaultOrphanNamespace},
			Data: map[string][]byte{cqv1.StoreSecretAccessKeyID: []byte(s3server.AccessKeyID),
				cqv1.StoreSecretSecretAccessKey: []byte(s3server.SecretAccessKey)}},
		&cqv1.CheckpointStore{ObjectMeta: metav1.ObjectMeta{Name: "bench"},
			Spec: cqv1.CheckpointStoreSpec{Endpoint: srv.Endpoint, Bucket: "bench", Prefix: "agent",
				CredentialsSecret: cqv1.SecretName{Name: "bench-store"},
				NamespaceSelector: &cqv1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}}},
	} {
		if err := env.Client.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			b.Fatal(err)
		}
	}
	st, err := objstore.New(objstore.Config{
		Spec:        cqv1.CheckpointStoreSpec{Endpoint: srv.Endpoint, Bucket: "bench"},
		AccessKeyID: s3server.AccessKeyID, SecretAccessKey: s3server.SecretAccessKey,
		Buffers: objstore.NewBuffers(nodeagent.OffloadBufferBytes)})
	if err != nil {
		b.Fatal(err)
	}
	verifying, err := srv.ChecksumClient()
	if err != nil {
		b.Fatal(err)
	}
	agents := benchAgents(b, bin)
	ways := []string{"warm-up", "the store's limit (plain PUTs)", "objstore.Store.Upload"}
	if size > 16<<20 {
		ways = append(ways, "the store's limit for a verified upload (minio-go, SHA-256 parts)")
	}
	run := 0
	for b.Loop() {
		run++
		// The store's limit and the uploader alone, on the same files; the first run's
		// first pass also grows the bucket's volumes (docs/offload.md, "Figures").
		paths := benchArchives(b, ns, count, size)
		for _, way := range ways {
			if way == "warm-up" && run > 1 {
				continue
			}
			cpu := readMachineCPU()
			start := time.Now()
			var g errgroup.Group
			g.SetLimit(nodeagent.DefaultOffloadWorkers)
			for i, p := range paths {
				g.Go(func() error { return putFile(ctx, srv, verifying, st, way, fmt.Sprintf("%d/%d", run, i), p) })
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
			if way != "warm-up" {
				rate := float64(count) / time.Since(start).Seconds()
				b.Logf("%d archives of %d MiB, %s, %d in flight: %.1f uploads/s (%.1f MB/s)", count, size>>20, way, nodeagent.DefaultOffloadWorkers, rate, rate*float64(size)/1e6)
				cpu.since(b, way, count)
			}
		}
		for i, a := range agents {
			rate := agentOffload(b, env, a, fmt.Sprintf("offload-%d-%d", run, i), ns, count, size)
			b.ReportMetric(rate, "agent-uploads/s")
		}
	}
}

// benchAgent is a node-agent binary that BenchmarkAgentOffload runs.
type benchAgent struct{ name, bin string }

// benchAgents are the agents to compare, each run in turn: BENCH_AGENTS=name=path,...
// (say main's binary and a branch's, in the same run), else the one built from this tree.
func benchAgents(b *testing.B, built string) []benchAgent {
	spec := os.Getenv("BENCH_AGENTS")
	if spec == "" {
		return []benchAgent{{name: "this tree", bin: built}}
	}
	var out []benchAgent
	for _, item := range strings.Split(spec, ",") {
		name, bin, ok := strings.Cut(item, "=")
		if !ok {
			b.Fatalf("BENCH_AGENTS=%q: give name=path,name=path", spec)
		}
		out = append(out, benchAgent{name: name, bin: bin})
	}
	return out
}

// benchArchives writes count archives of size into a new directory and flushes them to
// disk, so that their writeback does not fall in the window measured.
func benchArchives(b *testing.B, ns string, count int, size int64) []string {
	dir := b.TempDir()
	taken := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	var paths []string
	for i := range count {
		paths = append(paths, testarchive.New(ns, fmt.Sprintf("pod-%03d", i), "app").At(taken).WithSize(size).MustWrite(dir))
	}
	syscall.Sync()
	return paths
}

// agentOffload runs agent a as node over count new archives until they are published,
// marks them for offload as the manager does, and returns the archives offloaded per
// second from the first mark until every file is gone from the node (each then has its
// location, checked after, and the agent's counter of offloaded archives counts it). The
// directory is looked at rather than the Checkpoints listed or the agent's metrics
// scraped, so that the benchmark's own polls cost neither the apiserver nor the agent.
func agentOffload(b *testing.B, env *testenv.Env, a benchAgent, node, ns string, count int, size int64) float64 {
	ctx := context.Background()
	paths := benchArchives(b, ns, count, size)
	pid, metricsURL, stop := agentProcess(b, env, a.bin, node, filepath.Dir(paths[0]), count)
	var list cqv1.CheckpointList
	if err := env.Client.List(ctx, &list, client.MatchingFields{cqv1.FieldArchiveNode: node}); err != nil {
		b.Fatal(err)
	}
	requestsBefore := testenv.APIRequests(b, env.Config, testenv.AnyResource, nil)
	workBefore := scrape(metricsURL, `workqueue_work_duration_seconds_sum{controller="checkpoint-offload"`)
	queueBefore := [2]float64{scrape(metricsURL, `workqueue_queue_duration_seconds_sum{controller="checkpoint-offload"`),
		scrape(metricsURL, `workqueue_queue_duration_seconds_count{controller="checkpoint-offload"`)}
	agentBefore := procCPU(b, pid)
	cpu := readMachineCPU()
	start := time.Now()
	var g errgroup.Group
	g.SetLimit(8)
	for i := range list.Items {
		c := &list.Items[i]
		g.Go(func() error {
			orig := c.DeepCopy()
			c.Status.Offload = &cqv1.OffloadRequest{Store: "bench", Reason: "bench"}
			return env.Client.Status().Patch(ctx, c, client.MergeFrom(orig))
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	marked := time.Since(start)
	// Done when every file is gone: the agent removes one only once its upload is verified
	// and its location recorded. Looking costs the agent nothing, where scraping its
	// metrics every 20 ms cost it a fifth of its CPU (its handler gzips every series).
	deadline := time.Now().Add(5 * time.Minute)
	for left := count; left > 0; {
		left = 0
		for _, p := range paths {
			if _, err := os.Lstat(p); err == nil {
				left++
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: %d of %d archives still on the node after 5 minutes", a.name, left, count)
		}
		time.Sleep(10 * time.Millisecond)
	}
	wall := time.Since(start)
	// The counter follows each removal by a moment.
	n := scrape(metricsURL, "checkpointquota_node_offloaded_archives_total")
	for i := 0; n < float64(count) && i < 100; i++ {
		time.Sleep(10 * time.Millisecond)
		n = scrape(metricsURL, "checkpointquota_node_offloaded_archives_total")
	}
	if n != float64(count) {
		b.Fatalf("%s: the files are gone, but the agent counts %v archives offloaded; want %d", a.name, n, count)
	}
	busy := scrape(metricsURL, `workqueue_work_duration_seconds_sum{controller="checkpoint-offload"`) - workBefore
	agentCPU := procCPU(b, pid) - agentBefore
	rate := float64(count) / wall.Seconds()
	b.Logf("%s: %d archives of %d MiB, the node agent end to end (marks written in %v): %.1f uploads/s (%.1f MB/s), %.2f s wall; the agent's CPU %.2f s in the window (%.1f ms per archive), its offload workers busy %.2f of %d on average",
		a.name, count, size>>20, marked.Round(time.Millisecond), rate, rate*float64(size)/1e6, wall.Seconds(), agentCPU.Seconds(),
		1000*agentCPU.Seconds()/float64(count), busy/wall.Seconds(), nodeagent.DefaultOffloadWorkers)
	cpu.since(b, a.name+", the node agent end to end", count)
	logStages(b, a.name, metricsURL, queueBefore)
	if err := env.Client.List(ctx, &list, client.MatchingFields{cqv1.FieldArchiveNode: node}); err != nil {
		b.Fatal(err)
	}
	for _, c := range list.Items {
		if c.Status.Location == nil {
			b.Fatalf("%s: Checkpoint %s counted as offloaded has no status.location", a.name, c.Name)
		}
	}
	// The events and the last writes trail the last location by a little.
	time.Sleep(2 * time.Second)
	testenv.RequestsPer(b, fmt.Sprintf("%s, from the marks until the last archive offloaded and 2 s after, the benchmark's %d marks (status PATCHes) and its one LIST after included", a.name, count),
		requestsBefore, testenv.APIRequests(b, env.Config, testenv.AnyResource, nil), 0, float64(count))
	b.Logf("%s: the agent's CPU %.2f s over its life", a.name, stop().Seconds())
	return rate
}

// logStages logs the mean time of each stage of the agent's offloads
// (checkpointquota_node_offload_stage_seconds, which agents before session 7 lack) and of
// the wait in its offload queue since queueBefore (sum and count).
func logStages(b *testing.B, name, metricsURL string, queueBefore [2]float64) {
	n := scrape(metricsURL, `workqueue_queue_duration_seconds_count{controller="checkpoint-offload"`) - queueBefore[1]
	sum := scrape(metricsURL, `workqueue_queue_duration_seconds_sum{controller="checkpoint-offload"`) - queueBefore[0]
	out := fmt.Sprintf("%s: mean per offload: in the queue %.1f ms (%.0f waits)", name, 1000*sum/max(n, 1), n)
	for _, stage := range []string{"upload", "record", "log", "remove"} {
		series := `checkpointquota_node_offload_stage_seconds_%s{stage="` + stage + `",store="bench"}`
		if c := scrape(metricsURL, fmt.Sprintf(series, "count")); c > 0 {
			out += fmt.Sprintf(", %s %.1f ms", stage, 1000*scrape(metricsURL, fmt.Sprintf(series, "sum"))/c)
		}
	}
	b.Log(out)
}

// putFile puts the file at path to the store: plain, or with the uploader.
func putFile(ctx context.Context, srv *s3server.Server, verifying *minio.Client, st *objstore.Store, way, key, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	switch {
	case way == "objstore.Store.Upload":
		_, err = st.Upload(ctx, "upload/"+key, objstore.Archive{File: f, Size: fi.Size(), UID: "bench", FileName: filepath.Base(path)})
	case strings.Contains(way, "verified"):
		_, err = verifying.PutObject(ctx, "bench", "verified/"+key, io.NewSectionReader(f, 0, fi.Size()), fi.Size(),
			minio.PutObjectOptions{PartSize: 16 << 20, NumThreads: 2, DisableContentSha256: true, Checksum: minio.ChecksumSHA256})
	default:
		_, err = srv.Client.PutObject(ctx, "bench", "plain/"+key, io.NewSectionReader(f, 0, fi.Size()), fi.Size(),
			minio.PutObjectOptions{DisableContentSha256: true})
	}
	return err
}

// agentProcess runs the node-agent binary for node over dir until count archives are
// published, and returns its process ID and metrics endpoint; stop ends it and returns the
// CPU it used.
func agentProcess(b *testing.B, env *testenv.Env, bin, node, dir string, count int) (pid int, metricsURL string, stop func() time.Duration) {
	b.Helper()
	cmd, metricsURL := agentCommand(b, env, bin, node, dir)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill() })
	deadline := time.Now().Add(5 * time.Minute)
	for scrape(metricsURL, "checkpointquota_node_archives") < float64(count) {
		if time.Now().After(deadline) {
			b.Fatalf("not all %d archives published after 5 minutes", count)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cmd.Process.Pid, metricsURL, func() time.Duration {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
}
