package controllers_test

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// deletions watches the metadata of every Checkpoint and notes when each was first seen
// added and first seen going (a deletion timestamp, or gone).
type deletions struct {
	mu      sync.Mutex
	added   map[string]time.Time
	deleted map[string]time.Time
}

// watchDeletions starts a watch from now on, until the benchmark ends.
func watchDeletions(b *testing.B, cfg *rest.Config) *deletions {
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	res := mc.Resource(cqv1.GroupVersion.WithResource("checkpoints"))
	list, err := res.List(context.Background(), metav1.ListOptions{Limit: 1})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := res.Watch(ctx, metav1.ListOptions{ResourceVersion: list.GetResourceVersion()})
	if err != nil {
		b.Fatal(err)
	}
	d := &deletions{added: map[string]time.Time{}, deleted: map[string]time.Time{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			obj, err := meta.Accessor(ev.Object)
			if err != nil {
				continue // an error event: the benchmark sees the missing deletions
			}
			now := time.Now()
			d.mu.Lock()
			switch {
			case ev.Type == watch.Deleted || obj.GetDeletionTimestamp() != nil:
				if _, ok := d.deleted[obj.GetName()]; !ok {
					d.deleted[obj.GetName()] = now
				}
			case ev.Type == watch.Added:
				d.added[obj.GetName()] = now
			}
			d.mu.Unlock()
		}
	}()
	b.Cleanup(func() { cancel(); w.Stop(); <-done })
	return d
}

func (d *deletions) addedAt(name string) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.added[name]
	return t, ok
}

func (d *deletions) deletedAt(name string) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.deleted[name]
	return t, ok
}

func (d *deletions) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.deleted)
}

// percentile is the p-th percentile (0 to 100) of sorted durations, by the nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func sortDurations(ds []time.Duration) []time.Duration {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds
}

// histogram is a Prometheus histogram as scraped: cumulative counts by upper bound.
type histogram struct {
	sum, count float64
	buckets    map[float64]float64
}

// scrapeHistogram reads one histogram from a Prometheus text endpoint.
func scrapeHistogram(b *testing.B, url, name string) histogram {
	resp, err := http.Get(url)
	if err != nil {
		b.Fatalf("scraping %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	h := histogram{buckets: map[float64]float64{}}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		key, value, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(key, name) {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch {
		case key == name+"_sum":
			h.sum = v
		case key == name+"_count":
			h.count = v
		case strings.HasPrefix(key, name+`_bucket{le="`):
			le, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(key, name+`_bucket{le="`), `"}`), 64)
			if err == nil {
				h.buckets[le] = v
			}
		}
	}
	return h
}

// maxBound is the upper bound of the bucket that holds the largest observation.
func (h histogram) maxBound() float64 {
	var bounds []float64
	for le := range h.buckets {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	for _, le := range bounds {
		if h.buckets[le] >= h.count {
			return le
		}
	}
	return 0
}

func (h histogram) mean() float64 {
	if h.count == 0 {
		return 0
	}
	return h.sum / h.count
}

func (h histogram) String() string {
	largest := fmt.Sprintf("<= %g s", h.maxBound())
	if math.IsInf(h.maxBound(), 1) {
		largest = "above the last bucket"
	}
	return fmt.Sprintf("%.0f passes, mean %.3f s, largest %s", h.count, h.mean(), largest)
}
