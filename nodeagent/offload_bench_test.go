package nodeagent_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
func BenchmarkAgentOffload(b *testing.B) {
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
	const count, size = 100, 1 << 20
	run := 0
	for b.Loop() {
		run++
		dir := b.TempDir()
		taken := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
		var paths []string
		for i := range count {
			paths = append(paths, testarchive.New(ns, fmt.Sprintf("pod-%03d", i), "app").At(taken).WithSize(size).MustWrite(dir))
		}
		// The store's limit and the uploader alone, on the same files; the first run's
		// first pass also grows the bucket's volumes (docs/offload.md, "Figures").
		for _, way := range []string{"warm-up", "the store's limit (plain PUTs)", "objstore.Store.Upload"} {
			if way == "warm-up" && run > 1 {
				continue
			}
			start := time.Now()
			var g errgroup.Group
			g.SetLimit(nodeagent.DefaultOffloadWorkers)
			for i, p := range paths {
				g.Go(func() error { return putFile(ctx, srv, st, way, fmt.Sprintf("%d/%d", run, i), p) })
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
			if way != "warm-up" {
				b.Logf("%d archives of 1 MiB, %s, %d in flight: %.1f uploads/s", count, way, nodeagent.DefaultOffloadWorkers, count/time.Since(start).Seconds())
			}
		}

		node := fmt.Sprintf("offload-%d", run)
		stop := agentProcess(b, env, bin, node, dir, count)
		var list cqv1.CheckpointList
		if err := env.Client.List(ctx, &list, client.MatchingFields{cqv1.FieldArchiveNode: node}); err != nil {
			b.Fatal(err)
		}
		requestsBefore := testenv.APIRequests(b, env.Config, testenv.AnyResource, nil)
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
		deadline := time.Now().Add(5 * time.Minute)
		polls := 0
		for {
			polls++
			if err := env.Client.List(ctx, &list, client.MatchingFields{cqv1.FieldArchiveNode: node}); err != nil {
				b.Fatal(err)
			}
			stored := 0
			for _, c := range list.Items {
				if c.Status.Location != nil {
					stored++
				}
			}
			if stored == count {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d archives stored after 5 minutes", stored, count)
			}
			time.Sleep(20 * time.Millisecond)
		}
		wall := time.Since(start)
		// The events and the last writes trail the last location by a little.
		time.Sleep(2 * time.Second)
		testenv.RequestsPer(b, fmt.Sprintf("from the marks until the last location and 2 s after, the benchmark's %d marks (status PATCHes) included", count),
			requestsBefore, testenv.APIRequests(b, env.Config, testenv.AnyResource, nil), int64(polls), count)
		cpu := stop()
		b.Logf("%d archives of 1 MiB, the node agent end to end (marks written in %v): %.1f uploads/s, %.2f s wall; the agent's CPU %.2f s over its life",
			count, marked.Round(time.Millisecond), count/wall.Seconds(), wall.Seconds(), cpu.Seconds())
		b.ReportMetric(count/wall.Seconds(), "agent-uploads/s")
	}
}

// putFile puts the file at path to the store: plain, or with the uploader.
func putFile(ctx context.Context, srv *s3server.Server, st *objstore.Store, way, key, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if way == "objstore.Store.Upload" {
		_, err = st.Upload(ctx, "upload/"+key, objstore.Archive{File: f, Size: fi.Size(), UID: "bench", FileName: filepath.Base(path)})
		return err
	}
	_, err = srv.Client.PutObject(ctx, "bench", "plain/"+key, io.NewSectionReader(f, 0, fi.Size()), fi.Size(),
		minio.PutObjectOptions{DisableContentSha256: true})
	return err
}

// agentProcess runs the node-agent binary for node over dir until count archives are
// published; stop ends it and returns the CPU it used.
func agentProcess(b *testing.B, env *testenv.Env, bin, node, dir string, count int) (stop func() time.Duration) {
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
	return func() time.Duration {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
}
