// Command run is `make run`: the manager and the node agent on this machine, against the
// cluster in $KUBECONFIG or, where there is none, a local control plane of its own.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/checkpoint-quota/checkpoint-quota/test/localrun"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

func main() {
	root := testenv.RepoRoot()
	opts := options{}
	flag.StringVar(&opts.localDir, "local-dir", filepath.Join(root, ".local"), "Directory for the binaries, logs, kubeconfig and (by default) the archives.")
	flag.StringVar(&opts.checkpointDir, "checkpoint-dir", "", "Directory the node agent watches (default <local-dir>/checkpoints).")
	flag.StringVar(&opts.node, "node-name", "local-node", "Node name the node agent reports.")
	zapOpts := zap.Options{Development: true, StacktraceLevel: zapcore.PanicLevel}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	// Before anything logs: the test bed (envtest) and the clients log through
	// controller-runtime, which otherwise prints a stack dump about a missing logger. Their
	// lines (a few dozen at debug level while the control plane starts) go to
	// <local-dir>/logs/run.log beside the manager's and the agent's, so that the terminal
	// shows make run's own progress and then its status block.
	logFile, err := openRunLog(opts.localDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "make run:", err)
		os.Exit(1)
	}
	defer func() { _ = logFile.Close() }()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts), zap.WriteTo(logFile)))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = run(ctx, root, opts)
	switch {
	case ctx.Err() != nil:
		// Ctrl-C (or SIGTERM) is how a user ends make run: a clean exit, also during start-up.
		fmt.Println("Stopped.")
	case err != nil:
		fmt.Fprintln(os.Stderr, "make run:", err)
		stop()
		os.Exit(1)
	}
}

// openRunLog creates <local-dir>/logs/run.log, the log of make run's own program.
func openRunLog(localDir string) (*os.File, error) {
	dir := filepath.Join(localDir, "logs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return os.Create(filepath.Join(dir, "run.log"))
}

// options are make run's flags.
type options struct {
	localDir      string
	checkpointDir string
	node          string
}

func run(ctx context.Context, root string, opts options) error {
	local, err := filepath.Abs(opts.localDir)
	if err != nil {
		return err
	}
	dir := opts.checkpointDir
	if dir == "" {
		dir = filepath.Join(local, "checkpoints")
	}

	for _, d := range []string{dir, filepath.Join(local, "bin"), filepath.Join(local, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	fmt.Println("Building the manager and the node agent ...")
	manager, agent, err := localrun.Build(ctx, root, filepath.Join(local, "bin"))
	if err != nil {
		return err
	}

	cl, err := startCluster(ctx, local, opts.node)
	if err != nil {
		return err
	}
	defer cl.stop()
	if ctx.Err() != nil {
		return ctx.Err()
	}

	ports, err := localrun.FreePorts(4)
	if err != nil {
		return err
	}
	mgrLog, err := os.Create(filepath.Join(local, "logs", "manager.log"))
	if err != nil {
		return err
	}
	defer func() { _ = mgrLog.Close() }()
	agentLog, err := os.Create(filepath.Join(local, "logs", "node-agent.log"))
	if err != nil {
		return err
	}
	defer func() { _ = agentLog.Close() }()

	// The manager and the agent act as their ServiceAccounts, with the roles config/ gives them.
	managerKubeconfig, err := testenv.KubeconfigAs(cl.kubeconfig, filepath.Join(local, "kubeconfig-manager"), cl.posture.Manager)
	if err != nil {
		return err
	}
	agentKubeconfig, err := testenv.KubeconfigAs(cl.kubeconfig, filepath.Join(local, "kubeconfig-node-agent"), cl.posture.AgentOn(opts.node))
	if err != nil {
		return err
	}
	procs := []*localrun.Process{
		{Name: "manager", Path: manager, Output: mgrLog,
			Args: localrun.ManagerArgs(managerKubeconfig, cl.webhookPort, cl.certDir, ports[0], ports[1], cl.webhooks)},
		{Name: "node-agent", Path: agent, Output: agentLog,
			Args: localrun.AgentArgs(agentKubeconfig, opts.node, dir, filepath.Join(local, "state"), ports[2], ports[3])},
	}
	for _, p := range procs {
		if err := p.Start(); err != nil {
			return err
		}
		defer func() { _ = p.Stop(10 * time.Second) }()
	}
	if err := waitReady(ctx, map[string]int{"manager": ports[1], "node-agent": ports[3]}, local); err != nil {
		return err
	}

	store, err := startSampleStore(ctx, cl, local)
	if err != nil {
		return fmt.Errorf("starting the sample S3 server: %w", err)
	}
	defer store.stop()

	printInstructions(cl, dir, opts.node, local, store.note)
	<-ctx.Done()
	fmt.Println("\nStopping ...")
	return nil
}

// cluster is the control plane the processes run against.
type cluster struct {
	kubeconfig  string
	kubectl     string
	local       bool
	webhooks    bool
	webhookPort int
	certDir     string
	// posture says who the manager and the agent run as.
	posture *testenv.Posture
	stop    func()
}

// startCluster uses the cluster of $KUBECONFIG when it answers, else starts a local one.
// Either way it installs the roles and the admission policy of config/, as make deploy does.
func startCluster(ctx context.Context, local, node string) (*cluster, error) {
	root := testenv.RepoRoot()
	if path := os.Getenv("KUBECONFIG"); path != "" {
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(), nil).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("KUBECONFIG=%s cannot be used: %w (unset KUBECONFIG to start a local control plane)", path, err)
		}
		cfg.Timeout = 10 * time.Second
		dc, err := discovery.NewDiscoveryClientForConfig(cfg)
		if err != nil {
			return nil, err
		}
		if _, err := dc.ServerVersion(); err != nil {
			return nil, fmt.Errorf("the cluster of KUBECONFIG=%s does not answer: %w (unset KUBECONFIG to start a local control plane)", path, err)
		}
		fmt.Printf("Using the cluster of KUBECONFIG=%s; installing the CRDs ...\n", path)
		if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{Paths: []string{filepath.Join(root, "config", "crd", "bases")}, ErrorIfPathMissing: true}); err != nil {
			return nil, fmt.Errorf("installing the CRDs: %w", err)
		}
		// The node is the cluster's own: only the agent's namespace is created.
		c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme})
		if err == nil {
			err = localrun.RegisterNode(ctx, c, "")
		}
		if err != nil {
			return nil, err
		}
		kubectl, err := kubectlOnPath()
		if err != nil {
			return nil, err
		}
		fmt.Println("Installing the roles and the admission policy of config/" + testenv.PostureOverlay + " ...")
		posture, err := testenv.InstallPosture(ctx, c, kubectl)
		if err != nil {
			return nil, err
		}
		// The cluster cannot reach webhooks served on this machine: admission runs when
		// the operator is deployed (make deploy).
		return &cluster{kubeconfig: path, kubectl: kubectl, certDir: filepath.Join(local, "certs"), posture: posture, stop: func() {}}, nil
	}

	fmt.Println("No KUBECONFIG: starting a local control plane (etcd, kube-apiserver and kube-controller-manager) ...")
	env, err := testenv.Start(testenv.Options{Webhooks: true, ControllerManager: true})
	if err != nil {
		return nil, err
	}
	if err := localrun.RegisterNode(ctx, env.Client, node); err != nil {
		_ = env.Stop()
		return nil, err
	}
	posture, err := testenv.InstallPosture(ctx, env.Client, env.KubectlPath())
	if err == nil {
		err = testenv.WaitForAggregation(ctx, env.Client)
	}
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	kubeconfig := filepath.Join(local, "kubeconfig")
	data, err := os.ReadFile(env.Kubeconfig)
	if err == nil {
		err = os.WriteFile(kubeconfig, data, 0o600)
	}
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &cluster{
		kubeconfig: kubeconfig, kubectl: env.KubectlPath(), local: true, webhooks: true,
		webhookPort: env.Webhook.LocalServingPort, certDir: env.Webhook.LocalServingCertDir,
		posture: posture, stop: func() { _ = env.Stop() },
	}, nil
}

// kubectlOnPath is the kubectl on PATH, else the test bed's (hack/testbin.sh).
func kubectlOnPath() (string, error) {
	if path, err := exec.LookPath("kubectl"); err == nil {
		return path, nil
	}
	assets, err := testenv.Assets()
	if err != nil {
		return "", fmt.Errorf("no kubectl on PATH to render config/ with, and %w", err)
	}
	return filepath.Join(assets, "kubectl"), nil
}

// waitReady polls each process's /readyz until it answers 200.
func waitReady(ctx context.Context, probes map[string]int, local string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for name, port := range probes {
		url := fmt.Sprintf("http://127.0.0.1:%d/readyz", port)
		for {
			resp, err := http.Get(url)
			if err == nil {
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s did not become ready; see %s", name, filepath.Join(local, "logs", name+".log"))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

// printInstructions prints the status block; storeNote says what of the sample store.
func printInstructions(cl *cluster, dir, node, local, storeNote string) {
	if storeNote != "" {
		storeNote += "\n\n"
	}
	fmt.Printf(`
checkpoint-quota is running.

  kubeconfig   %s
  checkpoints  %s  (node %q)
  logs         %s

Try, in another terminal:

  export KUBECONFIG=%s
  make demo                                  # sample quotas and a stream of archives
  %s get checkpointquotas,checkpoints -A
  %s describe checkpointquotas -A

The manager and the node agent act as their ServiceAccounts (%s, %s),
with the roles and the admission policy of config/. To act as a namespace editor, as tenants do:

  %s create rolebinding alice-edit --clusterrole=edit --user=alice -n default
  %s --as alice -n default get checkpoints

%sCtrl-C stops everything.
`, cl.kubeconfig, dir, node, filepath.Join(local, "logs"), cl.kubeconfig, cl.kubectl, cl.kubectl,
		cl.posture.Manager.User, cl.posture.AgentOn(node).User, cl.kubectl, cl.kubectl, storeNote)
	if !cl.webhooks {
		fmt.Println("Admission webhooks are off: the cluster cannot reach this machine. `make deploy` installs them in the cluster.")
	}
}
