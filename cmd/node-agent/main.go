// Command node-agent publishes every checkpoint archive on its node as a Checkpoint object and removes an archive when its object is deleted.
package main

import (
	"flag"
	"os"
	"strings"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	"github.com/checkpoint-quota/checkpoint-quota/cmd/internal/apiserver"
	"github.com/checkpoint-quota/checkpoint-quota/cmd/internal/logging"
	"github.com/checkpoint-quota/checkpoint-quota/cmd/internal/memlimit"
	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
	"github.com/checkpoint-quota/checkpoint-quota/nodeagent"
)

// dirList is a repeatable --checkpoint-dir flag.
type dirList []string

func (d *dirList) String() string     { return strings.Join(*d, ",") }
func (d *dirList) Set(v string) error { *d = append(*d, v); return nil }

func main() {
	var (
		dirs                              dirList
		cfg                               nodeagent.Config
		metricsAddr, probeAddr, pprofAddr string
		qps                               float64
		burst                             int
		memoryLimit                       string
	)
	flag.Var(&dirs, "checkpoint-dir", "Checkpoint directory to watch; repeat for several (default "+nodeagent.DefaultCheckpointDir+").")
	flag.StringVar(&cfg.NodeName, "node-name", os.Getenv("NODE_NAME"), "Name of this node's Node object (default $NODE_NAME).")
	flag.StringVar(&cfg.StateDir, "state-dir", nodeagent.DefaultStateDir, "Directory on the node where the agent records the Checkpoint it published for each archive; it must outlive the pod (a hostPath).")
	flag.StringVar(&cfg.OrphanNamespace, "orphan-namespace", orDefault(os.Getenv("POD_NAMESPACE"), nodeagent.DefaultOrphanNamespace), "Namespace of the Checkpoints of archives whose namespace is gone (default $POD_NAMESPACE, else "+nodeagent.DefaultOrphanNamespace+").")
	flag.DurationVar(&cfg.SettleTime, "settle-time", nodeagent.DefaultSettleTime, "How long an archive's size and modification time must stay the same before it is read.")
	flag.DurationVar(&cfg.UnfinishedWait, "unfinished-wait", nodeagent.DefaultUnfinishedWait, "How long, from its modification time, an archive without tar's end-of-archive marker is taken for one still being written, and neither published nor reported.")
	flag.DurationVar(&cfg.RescanInterval, "rescan-interval", nodeagent.DefaultRescanInterval, "Period of the full rescan of the directories (one stat per file when nothing changed).")
	flag.DurationVar(&cfg.NodeStatusInterval, "node-status-interval", nodeagent.DefaultNodeStatusInterval, "Shortest time between two writes of the node's CheckpointNode; it is written only when it changed.")
	flag.DurationVar(&cfg.StoreCheckInterval, "store-check-interval", nodeagent.DefaultStoreCheckInterval, "How often the agent checks that it can reach and write each CheckpointStore (a small object written and removed); a new or changed store, one that failed its last check and one an upload failed to reach are checked every 10 s.")
	flag.DurationVar(&cfg.BucketSweepInterval, "bucket-sweep-interval", nodeagent.DefaultBucketSweepInterval, "How often one agent per CheckpointStore (the first node by name whose check of the store could write) deletes the objects of the bucket that no Checkpoint stands for, such as those of a node gone for good; negative turns the sweep off.")
	flag.IntVar(&cfg.Workers, "workers", nodeagent.DefaultWorkers, "Archives handled concurrently.")
	flag.Int64Var(&cfg.Limits.MaxMetadataSize, "max-metadata-size", archive.DefaultMaxMetadataSize, "Largest config.dump or spec.dump read from an archive, in bytes; a larger one makes the archive Unreadable.")
	flag.Float64Var(&qps, "kube-api-qps", nodeagent.DefaultQPS, "Queries per second to the kube-apiserver.")
	flag.IntVar(&burst, "kube-api-burst", nodeagent.DefaultBurst, "Burst of queries to the kube-apiserver.")
	flag.StringVar(&memoryLimit, "memory-limit", "80Mi", "Soft limit of the Go heap: a quantity, 0 for none, or \"auto\" for 90% of the container's memory limit; the GOMEMLIMIT environment variable, when set, wins. Set it below the container's memory limit.")
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint; 0 turns it off.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "0", "Address of Go's pprof endpoints (/debug/pprof/), for profiling; 0 turns them off.")
	zapOpts := logging.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(logging.New(zapOpts))
	log := ctrl.Log.WithName("setup")
	cfg.Dirs = dirs
	if _, err := memlimit.Set(memoryLimit); err != nil {
		log.Error(err, "Could not read --memory-limit")
		os.Exit(1)
	}

	restConfig, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "Could not find the cluster: set --kubeconfig or run in a pod")
		os.Exit(1)
	}
	restConfig.QPS, restConfig.Burst = float32(qps), burst
	// Wrong flags are reported at once, not after the kube-apiserver answers.
	if err := cfg.Validate(); err != nil {
		log.Error(err, "Could not set up the node agent")
		os.Exit(1)
	}
	ctx := ctrl.SetupSignalHandler()
	if err := apiserver.Wait(ctx, restConfig, log); err != nil {
		log.Info("Stopped before the kube-apiserver answered")
		return
	}
	mgr, err := nodeagent.NewManager(ctx, restConfig, cfg, nodeagent.ManagerOptions{
		MetricsBindAddress:     metricsAddr,
		HealthProbeBindAddress: probeAddr,
		PprofBindAddress:       pprofAddr,
	})
	if err != nil {
		log.Error(err, "Could not set up the node agent")
		os.Exit(1)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "Could not set up the health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		log.Error(err, "Could not set up the ready check")
		os.Exit(1)
	}
	log.Info("Starting the node agent", "node", cfg.NodeName, "directories", cfg.Dirs, "stateDir", cfg.StateDir, "orphanNamespace", cfg.OrphanNamespace, "settleTime", cfg.SettleTime.String(), "unfinishedWait", cfg.UnfinishedWait.String(), "rescanInterval", cfg.RescanInterval.String())
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "The node agent stopped with an error")
		os.Exit(1)
	}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
