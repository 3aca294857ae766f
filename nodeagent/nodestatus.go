package nodeagent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// +kubebuilder:rbac:groups=checkpointquota.dev,resources=checkpointnodes,verbs=get;create;update

// DefaultNodeStatusInterval is how often the agent looks whether its CheckpointNode needs
// a write: it writes only when something changed, so a burst of archives costs one write
// per interval, and a quiet node none.
const DefaultNodeStatusInterval = 5 * time.Second

// nodeReporter keeps the node's CheckpointNode in line with the archives and the
// filesystems of the checkpoint directories, and exports the filesystems' figures.
type nodeReporter struct {
	// Client lists this node's Checkpoints from the cache and writes the CheckpointNode.
	Client client.Client
	// APIReader reads the CheckpointNode and the Node around the cache.
	APIReader client.Reader
	cfg       Config
	state     *nodeState
	// checks are this node's checks of the CheckpointStores, nil for none.
	checks *storeChecker

	mu sync.Mutex
	// written is the status last written, nil until the first write.
	written *cqv1.CheckpointNodeStatus

	free, capacity *prometheus.Desc
}

func newNodeReporter(c client.Client, reader client.Reader, cfg Config, state *nodeState) *nodeReporter {
	labels := prometheus.Labels{"node": cfg.NodeName}
	return &nodeReporter{
		Client: c, APIReader: reader, cfg: cfg, state: state,
		free: prometheus.NewDesc("checkpointquota_node_filesystem_free_bytes",
			"Free bytes of the filesystem of the node's checkpoint directories, by the directories it holds.", []string{"directories"}, labels),
		capacity: prometheus.NewDesc("checkpointquota_node_filesystem_capacity_bytes",
			"Size of the filesystem of the node's checkpoint directories, by the directories it holds.", []string{"directories"}, labels),
	}
}

func (n *nodeReporter) NeedLeaderElection() bool { return false }

// Start writes the CheckpointNode once the cache has synced, then every interval when it changed.
func (n *nodeReporter) Start(ctx context.Context) error {
	if err := metrics.Registry.Register(n); err != nil {
		return fmt.Errorf("registering the node's filesystem metrics: %w", err)
	}
	defer metrics.Registry.Unregister(n)
	log := logf.FromContext(ctx).WithName("node-status").WithValues("node", n.cfg.NodeName)
	ctx = logf.IntoContext(ctx, log)
	t := n.cfg.Clock.NewTicker(n.cfg.NodeStatusInterval)
	defer t.Stop()
	for {
		if err := n.sync(ctx); err != nil && ctx.Err() == nil {
			log.Error(err, "Could not write the CheckpointNode; trying again on the next interval")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
	}
}

// sync writes the CheckpointNode when what it shows differs from what is.
func (n *nodeReporter) sync(ctx context.Context) error {
	st, err := n.observe(ctx)
	if err != nil {
		return err
	}
	n.mu.Lock()
	last := n.written
	n.mu.Unlock()
	if last != nil && !changed(last, &st) {
		return nil
	}
	if err := n.write(ctx, st); err != nil {
		return err
	}
	n.mu.Lock()
	n.written = &st
	n.mu.Unlock()
	return nil
}

// changed says whether a new status is worth a write: any change of the archives, or a
// change of free space of more than a thousandth of the filesystem (other files change
// free space all the time; a write for each would cost the apiserver for nothing).
func changed(old, updated *cqv1.CheckpointNodeStatus) bool {
	if len(old.Filesystems) != len(updated.Filesystems) {
		return true
	}
	a, b := *old.DeepCopy(), *updated.DeepCopy()
	for i := range a.Filesystems {
		fa, fb := a.Filesystems[i], b.Filesystems[i]
		step := max(fb.CapacityBytes/1000, 4096)
		if fa.CapacityBytes != fb.CapacityBytes || abs(fa.FreeBytes-fb.FreeBytes) >= step {
			return true
		}
		a.Filesystems[i].FreeBytes = fb.FreeBytes
	}
	a.Free, a.FreePercent = b.Free, b.FreePercent
	return !equality.Semantic.DeepEqual(a, b)
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// write creates or updates the CheckpointNode, owned by the Node so that it goes with it.
func (n *nodeReporter) write(ctx context.Context, st cqv1.CheckpointNodeStatus) error {
	var obj cqv1.CheckpointNode
	err := n.APIReader.Get(ctx, client.ObjectKey{Name: n.cfg.NodeName}, &obj)
	switch {
	case apierrors.IsNotFound(err):
		obj = cqv1.CheckpointNode{ObjectMeta: metav1.ObjectMeta{Name: n.cfg.NodeName}, Status: st}
		obj.OwnerReferences = n.owner(ctx)
		return n.Client.Create(ctx, &obj)
	case err != nil:
		return err
	}
	if len(obj.OwnerReferences) == 0 {
		obj.OwnerReferences = n.owner(ctx)
	}
	obj.Status = st
	return n.Client.Update(ctx, &obj)
}

// owner refers to the Node, when there is one: the garbage collector then deletes the
// CheckpointNode with it. Without a Node (an agent run by hand), the manager's release of
// gone nodes deletes it.
func (n *nodeReporter) owner(ctx context.Context) []metav1.OwnerReference {
	var node corev1.Node
	if err := n.APIReader.Get(ctx, client.ObjectKey{Name: n.cfg.NodeName}, &node); err != nil {
		return nil
	}
	return []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
}

// observe measures the node now: the agent's archives, the pins of this node's cached
// Checkpoints, and statfs of every checkpoint directory.
func (n *nodeReporter) observe(ctx context.Context) (cqv1.CheckpointNodeStatus, error) {
	var st cqv1.CheckpointNodeStatus
	var list cqv1.CheckpointList
	if err := n.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return st, err
	}
	for i := range list.Items {
		if c := &list.Items[i]; c.DeletionTimestamp.IsZero() && c.IsPinned() {
			st.Pinned++
		}
	}
	dirs := n.state.byDir()
	byDev := map[uint64]int{}
	for _, d := range n.cfg.Dirs {
		var s unix.Stat_t
		var fs unix.Statfs_t
		if unix.Stat(d, &s) != nil || unix.Statfs(d, &fs) != nil {
			// A missing directory holds no archive; the watcher reports it.
			continue
		}
		i, ok := byDev[s.Dev]
		if !ok {
			i = len(st.Filesystems)
			byDev[s.Dev] = i
			st.Filesystems = append(st.Filesystems, cqv1.CheckpointFilesystem{
				CapacityBytes: int64(fs.Blocks) * fs.Bsize, FreeBytes: int64(fs.Bavail) * fs.Bsize,
			})
		}
		f := &st.Filesystems[i]
		f.Directories = append(f.Directories, d)
		t := dirs[d]
		f.ArchiveBytes += t.bytes
		f.UnattributedBytes += t.unattributed.Bytes
		st.Archives += t.count
		st.Bytes += t.bytes
		st.Unreadable += t.unreadable
		st.Unattributed.Archives += t.unattributed.Archives
		st.Unattributed.Bytes += t.unattributed.Bytes
	}
	for i := range st.Filesystems {
		sort.Strings(st.Filesystems[i].Directories)
	}
	st.Size = quota.Bytes(st.Bytes)
	st.Stores = n.checks.snapshot()
	if f := fullest(st.Filesystems); f != nil {
		st.Free = quota.Bytes(f.FreeBytes)
		st.FreePercent = fmt.Sprintf("%d%%", f.FreeBytes*100/max(f.CapacityBytes, 1))
	}
	return st, nil
}

// fullest is the filesystem with the smallest share free.
func fullest(fss []cqv1.CheckpointFilesystem) *cqv1.CheckpointFilesystem {
	var best *cqv1.CheckpointFilesystem
	for i := range fss {
		f := &fss[i]
		if best == nil || f.FreeBytes*max(best.CapacityBytes, 1) < best.FreeBytes*max(f.CapacityBytes, 1) {
			best = f
		}
	}
	return best
}

// dirTotals are the archives of one checkpoint directory, as the agent knows them.
type dirTotals struct {
	count, bytes, unreadable int64
	unattributed             cqv1.NodeArchives
}

// byDir totals the archives the agent knows by directory. An archive that is unreadable
// and unpublished has no Checkpoint: no quota sees it, so it is unattributed.
func (s *nodeState) byDir() map[string]dirTotals {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]dirTotals{}
	for k, st := range s.files {
		t := out[k.Dir]
		t.count++
		t.bytes += st.version.Size
		if st.unreadable != "" {
			t.unreadable++
			if !st.published {
				t.unattributed.Archives++
				t.unattributed.Bytes += st.version.Size
			}
		}
		out[k.Dir] = t
	}
	return out
}

func (n *nodeReporter) Describe(ch chan<- *prometheus.Desc) {
	ch <- n.free
	ch <- n.capacity
}

// Collect exports the figures of the last status written.
func (n *nodeReporter) Collect(ch chan<- prometheus.Metric) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.written == nil {
		return
	}
	for _, f := range n.written.Filesystems {
		dirs := strings.Join(f.Directories, ",")
		ch <- prometheus.MustNewConstMetric(n.free, prometheus.GaugeValue, float64(f.FreeBytes), dirs)
		ch <- prometheus.MustNewConstMetric(n.capacity, prometheus.GaugeValue, float64(f.CapacityBytes), dirs)
	}
}
