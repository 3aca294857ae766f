package nodeagent

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"k8s.io/utils/clock"

	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
)

// Defaults of the agent's flags.
const (
	DefaultCheckpointDir = "/var/lib/kubelet/checkpoints"
	// DefaultStateDir holds the agent's record of what it published, on the node's disk.
	DefaultStateDir = "/var/lib/checkpoint-quota/agent"
	// DefaultOrphanNamespace holds the Checkpoints of archives whose namespace is gone,
	// when POD_NAMESPACE does not say the agent's namespace.
	DefaultOrphanNamespace = "checkpoint-quota-system"
	DefaultSettleTime      = 500 * time.Millisecond
	// DefaultUnfinishedWait is how long an archive without tar's end-of-archive marker is
	// taken for one the runtime is still writing, counted from its modification time.
	DefaultUnfinishedWait = time.Minute
	DefaultRescanInterval = 5 * time.Minute
	// DefaultWorkers matches the concurrency at which the test bed's kube-apiserver took
	// the most creates per second (docs/node-agent.md).
	DefaultWorkers = 32
	// DefaultOffloadWorkers uploads four archives at once (many small archives go faster
	// several in flight: docs/offload.md, "Figures"); their buffers share
	// OffloadBufferBytes, so memory does not grow with it.
	DefaultOffloadWorkers = 4
	// OffloadBufferBytes bounds the memory that the node's uploads hold at once: three
	// parts of 16 MiB, so that one large archive can send two parts at once while small
	// ones go beside it (docs/offload.md, "One pass").
	OffloadBufferBytes = 48 << 20
	// DefaultOffloadRetryBase and DefaultOffloadRetryMax: a failed upload is tried again
	// after 1 s, then twice as long each time, at most every 2 minutes.
	DefaultOffloadRetryBase = time.Second
	DefaultOffloadRetryMax  = 2 * time.Minute
	// DefaultQPS and DefaultBurst let a node with thousands of archives publish them in
	// seconds: each archive costs one write (its create), and the
	// apiserver, not this limiter or the archive reads, should bound a burst. Steady
	// state costs nothing: an unchanged archive causes no request.
	DefaultQPS   = 1000
	DefaultBurst = 2000
)

// Config is what one agent watches and how.
type Config struct {
	// NodeName is the node whose archives this agent owns.
	NodeName string
	// Dirs are the checkpoint directories, absolute paths.
	Dirs []string
	// StateDir is where the agent records, on the node, the Checkpoint it published for
	// each archive; it must outlive the agent's pod (a hostPath).
	StateDir string
	// OrphanNamespace holds the Checkpoints of archives whose namespace is gone.
	OrphanNamespace string
	// SettleTime is how long an archive's size and modification time must stay the same
	// before it is read.
	SettleTime time.Duration
	// UnfinishedWait is how long, from its modification time, an archive that does not
	// end with tar's end-of-archive marker is taken for one still being written: it is
	// neither published nor reported until it ends or this time has passed.
	UnfinishedWait time.Duration
	// RescanInterval is the period of the full rescan that catches what fsnotify missed.
	RescanInterval time.Duration
	// Workers is the number of archives handled concurrently.
	Workers int
	// NodeStatusInterval is how often the CheckpointNode is written at most.
	NodeStatusInterval time.Duration
	// Limits cap what is read from one archive.
	Limits archive.Limits
	// Clock tells the time; tests may inject one.
	Clock clock.WithTicker
	// OffloadWorkers is the number of archives uploaded at once; together they hold at most
	// OffloadBufferBytes in memory.
	OffloadWorkers int
	// OffloadRetryBase and OffloadRetryMax bound the backoff between the attempts of an
	// upload that fails.
	OffloadRetryBase, OffloadRetryMax time.Duration
	// StoreCheckInterval is how often each CheckpointStore is checked from this node.
	StoreCheckInterval time.Duration
	// BucketSweepInterval is how often the agent that sweeps a CheckpointStore deletes the
	// objects no Checkpoint stands for (bucket_sweep.go); negative turns the sweep off.
	BucketSweepInterval time.Duration
}

// Validate says what is wrong with the configuration, before anything contacts the cluster.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// withDefaults fills what the caller left empty and checks the rest.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("node name is empty: set --node-name or the NODE_NAME environment variable (the downward API's spec.nodeName)"))
	}
	if len(c.Dirs) == 0 {
		c.Dirs = []string{DefaultCheckpointDir}
	}
	seen := map[string]bool{}
	dirs := make([]string, 0, len(c.Dirs))
	for _, d := range c.Dirs {
		if !filepath.IsAbs(d) {
			errs = append(errs, fmt.Errorf("checkpoint directory %q is not an absolute path: give it as /var/lib/kubelet/checkpoints", d))
			continue
		}
		d = filepath.Clean(d)
		if !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	c.Dirs = dirs
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if !filepath.IsAbs(c.StateDir) {
		errs = append(errs, fmt.Errorf("state directory %q is not an absolute path: give it as %s", c.StateDir, DefaultStateDir))
	}
	c.StateDir = filepath.Clean(c.StateDir)
	for _, d := range c.Dirs {
		if c.StateDir == d {
			errs = append(errs, fmt.Errorf("state directory %s is also a checkpoint directory: give it a directory of its own, such as %s", d, DefaultStateDir))
		}
	}
	if c.OrphanNamespace == "" {
		c.OrphanNamespace = DefaultOrphanNamespace
	}
	if c.SettleTime <= 0 {
		c.SettleTime = DefaultSettleTime
	}
	if c.UnfinishedWait <= 0 {
		c.UnfinishedWait = DefaultUnfinishedWait
	}
	if c.RescanInterval <= 0 {
		c.RescanInterval = DefaultRescanInterval
	}
	if c.NodeStatusInterval <= 0 {
		c.NodeStatusInterval = DefaultNodeStatusInterval
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.OffloadWorkers <= 0 {
		c.OffloadWorkers = DefaultOffloadWorkers
	}
	if c.OffloadRetryBase <= 0 {
		c.OffloadRetryBase = DefaultOffloadRetryBase
	}
	if c.OffloadRetryMax <= 0 {
		c.OffloadRetryMax = DefaultOffloadRetryMax
	}
	if c.BucketSweepInterval == 0 {
		c.BucketSweepInterval = DefaultBucketSweepInterval
	}
	if c.StoreCheckInterval <= 0 {
		c.StoreCheckInterval = DefaultStoreCheckInterval
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	return c, errors.Join(errs...)
}

// configured reports whether dir is one of the checkpoint directories.
func (c Config) configured(dir string) bool {
	for _, d := range c.Dirs {
		if d == dir {
			return true
		}
	}
	return false
}
