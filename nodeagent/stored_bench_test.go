package nodeagent

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// BenchmarkRemember records where one more offloaded archive is stored, on a node that has
// stored 100, 1,000 and 10,000 before: what each offload costs the agent's state
// directory, under the Offloader's lock (docs/offload.md, "Figures", session 7).
func BenchmarkRemember(b *testing.B) {
	for _, before := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("stored=%d", before), func(b *testing.B) {
			dir := b.TempDir()
			// The node's history, as an agent before session 7 left it (stored.json).
			entries := make([]storedEntry, 0, before)
			for i := range before {
				c := storedCheckpoint(i)
				l := c.Status.Location
				entries = append(entries, storedEntry{Namespace: c.Namespace, Name: c.Name, UID: c.UID,
					Store: l.Store, Bucket: l.Bucket, Key: l.Key, Archive: c.Spec.Archive})
			}
			if err := saveJSON(dir, storedFile, entries); err != nil {
				b.Fatal(err)
			}
			o := newBenchOffloader(b, dir)
			i, w0 := before, wchar(b)
			for b.Loop() {
				o.remember(storedCheckpoint(i))
				i++
			}
			b.StopTimer()
			var size int64
			files, _ := os.ReadDir(dir)
			for _, e := range files {
				if info, err := e.Info(); err == nil {
					size += info.Size()
				}
			}
			b.ReportMetric(float64(size)/float64(i), "state-bytes/archive")
			b.ReportMetric(float64(wchar(b)-w0)/float64(i-before), "written-bytes/op")
		})
	}
}

// storedCheckpoint is the i-th offloaded Checkpoint of a node, as the Offloader records it.
func storedCheckpoint(i int) *cqv1.Checkpoint {
	name := fmt.Sprintf("cache-%d-redis-20261208t031600z", i)
	return &cqv1.Checkpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: types.UID(fmt.Sprintf("0b6f2c6e-8d3a-4f0e-9c1d-%012d", i))},
		Spec: cqv1.CheckpointSpec{Archive: &cqv1.ArchiveSource{NodeName: "node-1", Directory: "/var/lib/kubelet/checkpoints",
			FileName: fmt.Sprintf("checkpoint-cache-%d_shop-redis-2026-12-08T03:16:00Z.tar", i), PodName: fmt.Sprintf("cache-%d", i),
			PodUID: "5a0f7c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b", ContainerName: "redis", SizeBytes: 1 << 20}},
		Status: cqv1.CheckpointStatus{Location: &cqv1.ArchiveLocation{Store: "archive", Bucket: "checkpoints",
			Key: filepath.Join("node-archives", "shop", name), SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}},
	}
}

func newBenchOffloader(b *testing.B, dir string) *Offloader {
	b.Helper()
	o := &Offloader{Config: Config{StateDir: dir}, stored: map[types.NamespacedName]storedObject{}}
	if err := o.openStored(); err != nil {
		b.Fatal(err)
	}
	return o
}

// wchar is what this process has written to storage so far (/proc/self/io wchar: bytes passed to write(2)).
func wchar(tb testing.TB) int64 {
	tb.Helper()
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		tb.Fatal(err)
	}
	var n int64
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return n
}
