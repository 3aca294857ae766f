package nodeagent_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/nodeagent"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// settleTime is short so that the suite is fast; the slow-writer spec uses its own.
const settleTime = 200 * time.Millisecond

// orphanNamespace is the agents' namespace, where Checkpoints of gone namespaces live.
const orphanNamespace = "checkpoint-quota-system"

// agentUser is who the agents run as: the node agent's ServiceAccount as config/rbac/agent
// names it before an overlay renames it, bound to the agent's ClusterRole there, and the one
// identity whose deletes of pinned Checkpoints config/admission-policy allows.
const agentUser = "system:serviceaccount:system:node-agent"

// agentOn is the agent's identity on node as a pod's bound ServiceAccount token gives it:
// its user and the node it runs on.
func agentOn(node string) rest.ImpersonationConfig {
	return rest.ImpersonationConfig{UserName: agentUser, Extra: map[string][]string{nodeNameExtra: {node}}}
}

// nodeNameExtra is the key of the node's name in the user info of a bound token.
const nodeNameExtra = "authentication.kubernetes.io/node-name"

var (
	env *testenv.Env
	ctx = context.Background()
	// stateRoot holds each node's agent state, which outlives the agent as on a node's disk.
	stateRoot string
	// policyPath is the admission policy the specs apply, as a user would.
	policyPath = filepath.Join(testenv.RepoRoot(), "config", "admission-policy")
	// agentRBACPath holds the agent's ServiceAccount, ClusterRole and binding.
	agentRBACPath = filepath.Join(testenv.RepoRoot(), "config", "rbac", "agent")
	// userRolePaths are the roles config/rbac aggregates into the built-in view, edit and admin.
	userRolePaths = []string{
		filepath.Join(testenv.RepoRoot(), "config", "rbac", "checkpointquota_viewer_role.yaml"),
		filepath.Join(testenv.RepoRoot(), "config", "rbac", "checkpointquota_editor_role.yaml"),
	}
)

func TestNodeAgent(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(20 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	RunSpecs(t, "node agent suite")
}

var _ = BeforeSuite(func() {
	ctrllog.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var err error
	env, err = testenv.Start(testenv.Options{ControllerManager: true})
	Expect(err).NotTo(HaveOccurred())
	stateRoot, err = os.MkdirTemp("", "checkpoint-quota-agent-state-")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(os.RemoveAll, stateRoot)
	Expect(env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: orphanNamespace}})).To(Succeed())
	out, stderr, err := env.Kubectl("", "apply", "-k", policyPath)
	Expect(err).NotTo(HaveOccurred(), "kubectl apply -k %s: %s%s", policyPath, out, stderr)
	// The agents run with the agent's own permissions and identity, not as an administrator.
	Expect(env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "system"}})).To(Succeed())
	out, stderr, err = env.Kubectl("", "apply", "-f", agentRBACPath)
	Expect(err).NotTo(HaveOccurred(), "kubectl apply -f %s: %s%s", agentRBACPath, out, stderr)
	// Namespace users hold the built-in roles, which get the project's rules by aggregation.
	for _, path := range userRolePaths {
		out, stderr, err = env.Kubectl("", "apply", "-f", path)
		Expect(err).NotTo(HaveOccurred(), "kubectl apply -f %s: %s%s", path, out, stderr)
	}
	Expect(testenv.WaitForAggregation(ctx, env.Client)).To(Succeed())
})

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// agent is a node agent running in this process.
type agent struct {
	node   string
	dirs   []string
	cancel context.CancelFunc
	done   chan error
}

// startAgent runs an agent for node over dirs until the spec ends or stop is called.
func startAgent(node string, settle time.Duration, dirs ...string) *agent {
	GinkgoHelper()
	return startAgentWithClock(node, settle, nil, dirs...)
}

// startAgentWithClock is startAgent with the agent's clock; nil is the real one.
func startAgentWithClock(node string, settle time.Duration, clk clock.WithTicker, dirs ...string) *agent {
	GinkgoHelper()
	cfg := *env.Config
	cfg.QPS, cfg.Burst = nodeagent.DefaultQPS, nodeagent.DefaultBurst
	cfg.Impersonate = agentOn(node)
	mgr, err := nodeagent.NewManager(context.Background(), &cfg, nodeagent.Config{
		NodeName: node, Dirs: dirs, SettleTime: settle, RescanInterval: 2 * time.Second, Workers: 4, NodeStatusInterval: time.Second,
		// Short, so that the damaged archives the tests write are reported soon after.
		UnfinishedWait: 3 * time.Second,
		StateDir:       filepath.Join(stateRoot, node), OrphanNamespace: orphanNamespace, Clock: clk,
	}, nodeagent.ManagerOptions{MetricsBindAddress: "0"})
	Expect(err).NotTo(HaveOccurred())
	runCtx, cancel := context.WithCancel(ctx)
	a := &agent{node: node, dirs: dirs, cancel: cancel, done: make(chan error, 1)}
	go func() {
		defer GinkgoRecover()
		a.done <- mgr.Start(runCtx)
	}()
	DeferCleanup(a.stop)
	return a
}

// stop stops the agent and waits until it has, as a node's agent would be killed.
func (a *agent) stop() {
	GinkgoHelper()
	if a.cancel == nil {
		return
	}
	a.cancel()
	a.cancel = nil
	Eventually(a.done).Should(Receive(BeNil()))
}

// newNode creates a Node object with a unique name, as the kubelet registers one, and
// returns its name and a checkpoint directory for it.
func newNode() (string, string) {
	GinkgoHelper()
	name := "node-" + rand.String(6)
	Expect(env.Client.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
	return name, GinkgoT().TempDir()
}

// awaitRecorded waits until the agent of node has recorded each of the Checkpoints. The
// agent writes a record right after its create; stopped before that, it keeps the file of
// a Checkpoint deleted while it is down, which is what a spec of such a delete must rule out.
func awaitRecorded(node string, uids ...types.UID) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		data, err := os.ReadFile(filepath.Join(stateRoot, node, "records.log"))
		g.Expect(err).NotTo(HaveOccurred())
		for _, uid := range uids {
			g.Expect(string(data)).To(ContainSubstring(string(uid)))
		}
	}).Should(Succeed())
}

// checkpointsOf lists the Checkpoints of node, through the direct client.
func checkpointsOf(node string) func(Gomega) []cqv1.Checkpoint {
	return func(g Gomega) []cqv1.Checkpoint {
		var list cqv1.CheckpointList
		g.Expect(env.Client.List(ctx, &list, client.MatchingFields{cqv1.FieldArchiveNode: node})).To(Succeed())
		return list.Items
	}
}

// fileNames returns the file names the Checkpoints stand for ("" for one without spec.archive).
func fileNames(items []cqv1.Checkpoint) []string {
	out := make([]string, 0, len(items))
	for _, c := range items {
		name := ""
		if c.Spec.Archive != nil {
			name = c.Spec.Archive.FileName
		}
		out = append(out, name)
	}
	return out
}

// metric returns the value of the node's metric name with the given extra labels, or -1 when absent.
func metric(g Gomega, node, name string, labels map[string]string) float64 {
	GinkgoHelper()
	families, err := metrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if matches(m, node, labels) {
				if f.GetType() == dto.MetricType_COUNTER {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

func matches(m *dto.Metric, node string, labels map[string]string) bool {
	want := map[string]string{"node": node}
	for k, v := range labels {
		want[k] = v
	}
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
