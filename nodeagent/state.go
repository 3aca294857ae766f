package nodeagent

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
)

// nodeState is what the agent knows about each archive on its node: what settling needs,
// and what the metrics report.
type nodeState struct {
	mu    sync.Mutex
	files map[fileKey]*fileState

	reads, bytesRead, removed atomic.Int64
}

type fileState struct {
	version archive.Version
	// since is when this version was first seen.
	since time.Time
	// published is true once a Checkpoint stands for this version.
	published bool
	// unreadable is the reason this version could not be read, if it could not.
	unreadable archive.Reason
}

func newNodeState() *nodeState {
	return &nodeState{files: map[fileKey]*fileState{}}
}

// settle records version v of k as seen at now and returns how long to wait before the
// archive may be read: zero once its size and modification time have been stable for
// settle, judged by the modification time (so archives found at start need no wait) or
// by how long this version has been seen (for a modification time in the future).
func (s *nodeState) settle(k fileKey, v archive.Version, now time.Time, settle time.Duration) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.files[k]
	if st == nil || st.version != v {
		st = &fileState{version: v, since: now}
		s.files[k] = st
	}
	age := max(now.Sub(time.Unix(0, v.ModTime)), now.Sub(st.since))
	if age >= settle {
		return 0
	}
	return settle - age
}

// record notes the outcome of reading k's current version.
// publication says whether an archive has a Checkpoint, at the call sites of record.
type publication bool

const (
	publishedNow publication = true
	notPublished publication = false
)

func (s *nodeState) record(k fileKey, p publication, reason archive.Reason) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.files[k]; st != nil {
		st.published, st.unreadable = bool(p), reason
	}
}

func (s *nodeState) forget(k fileKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.files, k)
}

// collector exports the node's archive counts on the controller-runtime metrics endpoint.
// It reads the state at scrape time, so the figures cannot drift from what the agent knows.
type collector struct {
	state *nodeState

	archives, bytes, unreadable, reads, bytesRead, removed *prometheus.Desc
}

func newCollector(node string, state *nodeState) *collector {
	labels := prometheus.Labels{"node": node}
	desc := func(name, help string, variable ...string) *prometheus.Desc {
		return prometheus.NewDesc("checkpointquota_node_"+name, help, variable, labels)
	}
	return &collector{
		state:      state,
		archives:   desc("archives", "Readable checkpoint archives on the node, published as Checkpoint objects."),
		bytes:      desc("archive_bytes", "Total size of the readable checkpoint archives on the node."),
		unreadable: desc("unreadable_archives", "Archives on the node that could not be read, by reason; they are kept on disk.", "reason"),
		reads:      desc("archive_reads_total", "Archives whose identity was read (a cache hit does not count)."),
		bytesRead:  desc("archive_read_bytes_total", "Bytes read from archives to learn their identity."),
		removed:    desc("archives_removed_total", "Archives removed because their Checkpoint was deleted."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.archives, c.bytes, c.unreadable, c.reads, c.bytesRead, c.removed} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	count, size, unreadable := c.state.totals()
	ch <- prometheus.MustNewConstMetric(c.archives, prometheus.GaugeValue, float64(count))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(size))
	for reason, n := range unreadable {
		ch <- prometheus.MustNewConstMetric(c.unreadable, prometheus.GaugeValue, float64(n), string(reason))
	}
	ch <- prometheus.MustNewConstMetric(c.reads, prometheus.CounterValue, float64(c.state.reads.Load()))
	ch <- prometheus.MustNewConstMetric(c.bytesRead, prometheus.CounterValue, float64(c.state.bytesRead.Load()))
	ch <- prometheus.MustNewConstMetric(c.removed, prometheus.CounterValue, float64(c.state.removed.Load()))
}

// totals counts the published archives, their bytes, and the unreadable ones by reason.
func (s *nodeState) totals() (count, size int64, unreadable map[archive.Reason]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	unreadable = map[archive.Reason]int{}
	for _, st := range s.files {
		switch {
		case st.unreadable != "":
			unreadable[st.unreadable]++
		case st.published:
			count++
			size += st.version.Size
		}
	}
	return count, size, unreadable
}
