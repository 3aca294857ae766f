package controllers_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
	"github.com/checkpoint-quota/checkpoint-quota/nodeagent"
)

// BenchmarkApiserverMemory10k creates 10,000 Checkpoints and reports what they cost the
// kube-apiserver: its RSS and its live Go heap (after a collection) before and after, and the
// size of one object as the apiserver returns it. The manager does not run: the figure is the
// objects'. Two sub-benchmarks, each on its own control plane:
//
//   - published: the Checkpoints agents on 10 nodes publish (the agent's own object builder,
//     under the agent's field manager);
//   - empty: Checkpoints with a name and nothing else, created the same way. What they cost is
//     what the apiserver spends on any object of a custom resource (its decoded metadata and
//     managedFields, the watch cache's entry, event and snapshot), so published minus empty is
//     what spec.archive adds.
func BenchmarkApiserverMemory10k(b *testing.B) {
	taken := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	b.Run("published", func(b *testing.B) {
		benchmarkApiserverMemory(b, "apiserver-heap", func(i int, ns string) *cqv1.Checkpoint {
			pod := fmt.Sprintf("web-7c9f8d6b5-%05d", i/5)
			at := taken.Add(time.Duration(i%5) * time.Minute)
			return nodeagent.Publication{Node: fmt.Sprintf("node-%03d", i%10), Dir: nodeagent.DefaultCheckpointDir,
				File: fmt.Sprintf("checkpoint-%s_%s-app-%s.tar", pod, ns, at.Format(time.RFC3339)), Size: 72 << 10, Namespace: ns,
				Identity: archive.Identity{Namespace: ns, Pod: pod, PodUID: string(types.UID(fmt.Sprintf("0b3c6d9e-1f2a-4b5c-8d7e-%012d", i/5))),
					Container: "app", Image: "registry.example.com/shop/web:1.4.2", Runtime: "cri-o", CheckpointTime: at}}.Checkpoint()
		})
	})
	b.Run("empty", func(b *testing.B) {
		benchmarkApiserverMemory(b, "apiserver-heap-empty", func(i int, ns string) *cqv1.Checkpoint {
			return &cqv1.Checkpoint{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("empty-%05d", i), Namespace: ns}}
		})
	})
}

// benchmarkApiserverMemory creates 10,000 Checkpoints built by object (the i-th, in one of 10
// namespaces) from 16 clients, and reports the kube-apiserver's growth. The heap profiles
// are saved as BENCH_PROFILE_DIR/profile.pprof and profile-before.pprof.
func benchmarkApiserverMemory(b *testing.B, profile string, object func(i int, ns string) *cqv1.Checkpoint) {
	const count, namespaces = 10000, 10
	bed := newBenchBed(b)
	nss := bed.namespaces(b, namespaces, "mem")
	pid := bed.apiserverPID(b)
	dir := os.Getenv("BENCH_PROFILE_DIR")
	for b.Loop() {
		time.Sleep(10 * time.Second) // the bed's start settles
		rss0, heap0 := procRSSMiB(b, pid), apiserverLiveHeapMiB(b, bed.env.Config, dir, profile+"-before")
		parallel(count, func(i int) {
			if err := bed.env.Client.Create(context.Background(), object(i, nss[i%namespaces]), client.FieldOwner("node-agent")); err != nil {
				b.Error(err)
			}
		})
		time.Sleep(15 * time.Second) // the watch cache and the collector settle
		rss1, heap1 := procRSSMiB(b, pid), apiserverLiveHeapMiB(b, bed.env.Config, dir, profile)
		b.ReportMetric(rss1-rss0, "apiserver-rss-MiB/10k")
		b.ReportMetric(heap1-heap0, "apiserver-live-heap-MiB/10k")
		b.ReportMetric(storedSize(b, bed.env.Client), "bytes/checkpoint-stored")
		b.Logf("kube-apiserver RSS %.0f -> %.0f MiB, live heap %.0f -> %.0f MiB for %d Checkpoints",
			rss0, rss1, heap0, heap1, count)
	}
}

// apiserverLiveHeapMiB is the kube-apiserver's live Go heap: it has the apiserver collect
// its garbage (its heap profile with gc=1, saved as profileDir/name.pprof unless profileDir is empty), then
// reads go_memstats_heap_inuse_bytes.
func apiserverLiveHeapMiB(b *testing.B, cfg *rest.Config, profileDir, name string) float64 {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	heap, err := cs.RESTClient().Get().AbsPath("/debug/pprof/heap").Param("gc", "1").DoRaw(context.Background())
	if err != nil {
		b.Fatalf("reading the kube-apiserver's heap profile: %v", err)
	}
	if profileDir != "" {
		if err := os.WriteFile(filepath.Join(profileDir, name+".pprof"), heap, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	raw, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		b.Fatalf("scraping the kube-apiserver's /metrics: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f / (1 << 20)
		}
	}
	b.Fatal("the kube-apiserver's /metrics has no go_memstats_heap_inuse_bytes")
	return 0
}
