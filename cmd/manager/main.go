// Command manager serves the admission webhooks and runs the quota controller.
package main

import (
	"crypto/tls"
	"flag"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/cmd/internal/apiserver"
	"github.com/checkpoint-quota/checkpoint-quota/cmd/internal/logging"
	"github.com/checkpoint-quota/checkpoint-quota/cmd/internal/memlimit"
	"github.com/checkpoint-quota/checkpoint-quota/controllers"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

var scheme = runtime.NewScheme()

// gracefulShutdown bounds how long the manager's parts may take to stop.
const gracefulShutdown = 5 * time.Second

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(cqv1.AddToScheme(scheme))
}

// options are the manager's flags.
type options struct {
	metricsAddr       string
	pprofAddr         string
	probeAddr         string
	webhookPort       int
	webhookCertDir    string
	leaderElect       bool
	leaderElectionNS  string
	leaseDuration     time.Duration
	renewDeadline     time.Duration
	retryPeriod       time.Duration
	enableWebhooks    bool
	enableControllers bool
	resyncPeriod      time.Duration
	nodeGracePeriod   time.Duration
	pruneConcurrency  int
	statusInterval    time.Duration
	memoryLimit       string
}

func main() {
	var o options
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint; 0 turns it off.")
	flag.StringVar(&o.pprofAddr, "pprof-bind-address", "0", "Address of Go's pprof endpoints (/debug/pprof/), for profiling; 0 turns them off.")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	flag.IntVar(&o.webhookPort, "webhook-port", 9443, "Port of the admission webhook server.")
	flag.StringVar(&o.webhookCertDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "Directory holding tls.crt and tls.key for the webhook server; reloaded when the files change.")
	flag.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader so that only one replica runs the controllers.")
	flag.StringVar(&o.leaderElectionNS, "leader-election-namespace", "", "Namespace of the leader-election lease (default: the manager's own).")
	flag.DurationVar(&o.leaseDuration, "leader-election-lease-duration", 15*time.Second, "How long the other replicas wait, after the leader's last renewal, before one takes its place when it stopped without releasing the Lease (killed, node lost).")
	flag.DurationVar(&o.renewDeadline, "leader-election-renew-deadline", 10*time.Second, "How long the leader keeps trying to renew before it stops leading (and exits).")
	flag.DurationVar(&o.retryPeriod, "leader-election-retry-period", time.Second, "How often the leader renews and the other replicas try to take the Lease; a released Lease is taken within 1 to 2.2 times this.")
	flag.BoolVar(&o.enableWebhooks, "enable-webhooks", true, "Serve the admission webhooks.")
	flag.BoolVar(&o.enableControllers, "enable-controllers", true, "Run the quota controllers.")
	flag.DurationVar(&o.resyncPeriod, "resync-period", 10*time.Minute, "Period of the full recompute of every quota.")
	rotation := bindCertRotationFlags(flag.CommandLine)
	flag.DurationVar(&o.nodeGracePeriod, "node-gone-grace-period", time.Hour, "How long a node must be gone before its Checkpoints are released; 0 never releases.")
	flag.IntVar(&o.pruneConcurrency, "prune-concurrency", 64, "Deletes of Checkpoints in flight at once.")
	flag.DurationVar(&o.statusInterval, "status-interval", time.Second, "Least time between two status writes of one quota.")
	flag.StringVar(&o.memoryLimit, "memory-limit", memlimit.Auto, "Soft limit of the Go heap: a quantity such as 600Mi, 0 for none, or \"auto\" for 90% of the container's memory limit (none outside a container with one); the GOMEMLIMIT environment variable, when set, wins.")
	zapOpts := logging.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(logging.New(zapOpts))
	log := ctrl.Log.WithName("setup")
	limit, err := memlimit.Set(o.memoryLimit)
	if err != nil {
		log.Error(err, "Could not read --memory-limit")
		os.Exit(1)
	}
	log.V(1).Info("Set the heap soft limit", "bytes", limit)

	restConfig, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "Could not find the cluster: set --kubeconfig or run in a pod")
		os.Exit(1)
	}
	ctx := ctrl.SetupSignalHandler()
	if err := apiserver.Wait(ctx, restConfig, log); err != nil {
		log.Info("Stopped before the kube-apiserver answered")
		return
	}

	noHTTP2 := func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }
	// The quotas' parsed policies: each quota is parsed as it enters the cache, and admission
	// and the pruning pass share what was parsed.
	policies := policy.NewParsed()
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:  o.probeAddr,
		PprofBindAddress:        o.pprofAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "manager.checkpointquota.dev",
		LeaderElectionNamespace: o.leaderElectionNS,
		LeaseDuration:           &o.leaseDuration,
		RenewDeadline:           &o.renewDeadline,
		RetryPeriod:             &o.retryPeriod,
		// A leader that stops cleanly (SIGTERM: a rollout, a drain, an uninstall) gives the
		// Lease up once its controllers have stopped, so another replica takes it within a
		// retry period instead of waiting out the lease duration. Safe because the process
		// exits as soon as the manager returns (the end of main).
		LeaderElectionReleaseOnCancel: true,
		// Stopping must end, and the Lease be released, before the kubelet's SIGKILL
		// (terminationGracePeriodSeconds: 10 in config/ and the chart).
		GracefulShutdownTimeout: ptr.To(gracefulShutdown),
		// Nothing the manager decides reads managedFields, the Checkpoints' file names,
		// images or labels, or the pods' annotations: at 100,000 Checkpoints the cache is
		// most of the manager's memory.
		Cache: controllers.CacheOptions(policies),
		WebhookServer: rotation.server(webhook.NewServer(webhook.Options{
			Port:    o.webhookPort,
			CertDir: o.webhookCertDir,
			TLSOpts: []func(*tls.Config){noHTTP2},
		})),
	})
	if err != nil {
		log.Error(err, "Could not create the manager")
		os.Exit(1)
	}

	if err := rotation.setup(ctx, mgr, o.webhookCertDir); err != nil {
		log.Error(err, "Could not set up the certificate rotation")
		os.Exit(1)
	}
	if o.enableWebhooks {
		if err := setupWebhooks(mgr, policies, o); err != nil {
			log.Error(err, "Could not set up the webhooks")
			os.Exit(1)
		}
	}
	if o.enableControllers {
		if err := setupControllers(ctx, mgr, o, policies); err != nil {
			log.Error(err, "Could not set up the controllers")
			os.Exit(1)
		}
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "Could not set up the health check")
		os.Exit(1)
	}
	ready := healthz.Ping
	if o.enableWebhooks {
		ready = mgr.GetWebhookServer().StartedChecker()
	}
	if err := mgr.AddReadyzCheck("readyz", ready); err != nil {
		log.Error(err, "Could not set up the ready check")
		os.Exit(1)
	}

	log.Info("Starting the manager")
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "The manager stopped with an error")
		os.Exit(1)
	}
	// Nothing may run after the manager stopped: it released the leader Lease
	// (LeaderElectionReleaseOnCancel), and another replica may already lead.
}
