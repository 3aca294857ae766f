// Package e2e drives the real manager and node-agent binaries, as separate processes, the way a user would: kubectl, files on disk, and process restarts.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/checkpoint-quota/checkpoint-quota/test/localrun"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

var (
	env *testenv.Env
	// posture says who the manager and the agent act as.
	posture *testenv.Posture
	manager *localrun.Process
	agent   *localrun.Process
	ckptDir string
	// stateDir is the agent's record of what it published, kept across its restarts.
	stateDir string
	logDir   string
	// managerMetrics and agentMetrics are the /metrics addresses of the two processes.
	managerMetrics, agentMetrics string
	// agentBinary is the node agent built for the suite, for specs that run a second node.
	agentBinary string
)

const nodeName = "e2e-node"

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	logf.SetLogger(GinkgoLogr)
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(200 * time.Millisecond)
	RunSpecs(t, "End-to-end suite")
}

var _ = BeforeSuite(func(ctx context.Context) {
	bin := GinkgoT().TempDir()
	managerBin, agentBin, err := localrun.Build(ctx, testenv.RepoRoot(), bin)
	Expect(err).NotTo(HaveOccurred())
	agentBinary = agentBin

	env, err = testenv.Start(testenv.Options{Webhooks: true, ControllerManager: true})
	Expect(err).NotTo(HaveOccurred())
	Expect(localrun.RegisterNode(ctx, env.Client, nodeName)).To(Succeed())
	// The security posture of config/: the manager and the agent act as their
	// ServiceAccounts, tenants hold the built-in edit role, and the admission policy is in force.
	posture, err = testenv.InstallPosture(ctx, env.Client, env.KubectlPath())
	Expect(err).NotTo(HaveOccurred())
	Expect(testenv.WaitForAggregation(ctx, env.Client)).To(Succeed())
	managerKubeconfig, err := env.KubeconfigAs(posture.Manager)
	Expect(err).NotTo(HaveOccurred())
	agentKubeconfig, err := env.KubeconfigAs(posture.AgentOn(nodeName))
	Expect(err).NotTo(HaveOccurred())
	stateDir = GinkgoT().TempDir()

	ckptDir = GinkgoT().TempDir()
	logDir = GinkgoT().TempDir()
	ports, err := localrun.FreePorts(4)
	Expect(err).NotTo(HaveOccurred())
	managerMetrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[0])
	agentMetrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[2])
	manager = &localrun.Process{Name: "manager", Path: managerBin, Output: logFile("manager.log"),
		Args: append(localrun.ManagerArgs(managerKubeconfig, env.Webhook.LocalServingPort, env.Webhook.LocalServingCertDir, ports[0], ports[1], true),
			"--resync-period=5s")}
	agent = &localrun.Process{Name: "node-agent", Path: agentBin, Output: logFile("node-agent.log"),
		Args: append(localrun.AgentArgs(agentKubeconfig, nodeName, ckptDir, stateDir, ports[2], ports[3]),
			"--settle-time=300ms", "--rescan-interval=5s", "--store-check-interval=10s", "--bucket-sweep-interval=5s")}
	Expect(manager.Start()).To(Succeed())
	Expect(agent.Start()).To(Succeed())
	DeferCleanup(func() {
		_ = agent.Stop(10 * time.Second)
		_ = manager.Stop(10 * time.Second)
		_ = env.Stop()
	})
	// The webhook answers once the manager is up: a dry-run create goes through it.
	Eventually(func() string {
		_, stderr, _ := env.Kubectl(minimalQuota("default", "probe"), "apply", "--dry-run=server", "-f", "-")
		return stderr
	}, 60*time.Second).ShouldNot(ContainSubstring("failed calling webhook"))
}, NodeTimeout(15*time.Minute))

func logFile(name string) *os.File {
	f, err := os.Create(filepath.Join(logDir, name))
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		_ = f.Close()
		if CurrentSpecReport().Failed() || os.Getenv("E2E_SHOW_LOGS") != "" {
			data, _ := os.ReadFile(f.Name())
			GinkgoWriter.Printf("==== %s ====\n%s\n", name, tail(data, 8000))
		}
	})
	return f
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// newTenant is the person alice holding only the built-in edit role, in namespace ns.
func newTenant(ctx context.Context, ns string) *testenv.Tenant {
	GinkgoHelper()
	t, err := env.NewTenant(ctx, "alice", ns)
	Expect(err).NotTo(HaveOccurred())
	return t
}

func minimalQuota(ns, name string) string {
	return "apiVersion: checkpointquota.dev/v1alpha1\nkind: CheckpointQuota\nmetadata: {name: " + name + ", namespace: " + ns + "}\nspec: {limits: {perContainer: {checkpoints: 10}}}\n"
}
