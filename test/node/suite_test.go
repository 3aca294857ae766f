// Package node runs checkpoint-quota as its image on a real node: a kubelet, containerd,
// runc and CRIU on this machine (hack/node/node.sh), real pods checkpointed through the
// kubelet's API, the operator installed as a cluster operator would install it. It runs
// only where such a node is up: `make test-node` starts one, sets CHECKPOINT_QUOTA_NODE to
// its environment file, runs this suite and stops the node. Elsewhere it skips.
package node

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// node is the environment hack/node/node.sh wrote (NODE_DIR, KUBECONFIG, NODE_IP ...).
var (
	node    map[string]string
	k8s     client.WithWatch
	helmBin string
	root    string
)

const (
	// systemNS is where both install paths put the operator.
	systemNS = "checkpoint-quota-system"
	release  = "checkpoint-quota"
)

func TestNode(t *testing.T) {
	envFile := os.Getenv("CHECKPOINT_QUOTA_NODE")
	if envFile == "" {
		t.Skip("no real node: `make test-node` starts one (hack/node/node.sh), runs this suite against it and stops it")
	}
	var err error
	if node, err = readEnv(envFile); err != nil {
		t.Fatalf("reading the node's environment %s: %v", envFile, err)
	}
	RegisterFailHandler(Fail)
	logf.SetLogger(GinkgoLogr)
	SetDefaultEventuallyTimeout(90 * time.Second)
	SetDefaultEventuallyPollingInterval(250 * time.Millisecond)
	RunSpecs(t, "Real node suite on "+node["RUNTIME"])
}

var _ = BeforeSuite(func() {
	root = testenv.RepoRoot()
	helmBin = os.Getenv("HELM")
	Expect(helmBin).NotTo(BeEmpty(), "HELM names the helm binary (hack/helm.sh)")
	cfg, err := clientcmd.BuildConfigFromFlags("", node["KUBECONFIG"])
	Expect(err).NotTo(HaveOccurred())
	cfg.QPS, cfg.Burst = 100, 200
	scheme := runtime.NewScheme()
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(cqv1.AddToScheme(scheme)).To(Succeed())
	k8s, err = client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
})

// Every spec that fails shows what the node's components and the operator's pods logged.
var _ = ReportAfterEach(func(r SpecReport) {
	if !r.Failed() {
		return
	}
	for _, name := range []string{"kubelet", node["RUNTIME"]} {
		data, _ := os.ReadFile(filepath.Join(node["NODE_DIR"], "logs", name+".log"))
		GinkgoWriter.Printf("==== %s (last lines) ====\n%s\n", name, tail(data, 4000))
	}
	out, _, _ := kubectl("", "logs", "-n", systemNS, "-l", "app.kubernetes.io/name=checkpoint-quota",
		"--all-containers", "--prefix", "--tail=40")
	GinkgoWriter.Printf("==== operator pods ====\n%s\n", out)
})

func readEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	env := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), "="); ok {
			env[k] = v
		}
	}
	return env, s.Err()
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
