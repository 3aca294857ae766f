package deploy

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/localrun"
	"github.com/checkpoint-quota/checkpoint-quota/webhooks"
)

// helm install and uninstall on the test bed. There is no kubelet, so the pods of the
// Deployment and the DaemonSet never run; the spec runs the manager and an agent as local
// processes with the arguments of the installed pod templates, as their service accounts
// (impersonated, so the chart's RBAC is what they get), and routes the webhook Service to the
// local manager through an EndpointSlice, the way a cluster routes it to the pod.
var _ = Describe("helm install", func() {
	It("brings up webhooks with the built-in rotation and an agent, and helm uninstall keeps every archive", func(ctx SpecContext) {
		ip := hostIP()
		if ip == "" {
			Skip("no non-loopback IPv4 address for the apiserver to reach the webhook at")
		}
		ns, err := env.CreateNamespace(ctx, "helm")
		Expect(err).NotTo(HaveOccurred())
		const release = "cq"
		name := release + "-checkpoint-quota"
		helmEnv := []string{"KUBECONFIG=" + env.Kubeconfig}

		out, err := runHelm(helmEnv, "install", release, chartDir(), "--namespace", ns, "--set", "certificates.mode=rotation")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring("STATUS: deployed"))
		uninstalled := false
		DeferCleanup(func() {
			if !uninstalled {
				_, _ = runHelm(helmEnv, "uninstall", release, "--namespace", ns)
			}
		})

		By("running two replicas of the manager at once with the Deployment's arguments, as its service account")
		var deploy appsv1.Deployment
		Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name + "-controller-manager"}, &deploy)).To(Succeed())
		Expect(*deploy.Spec.Replicas).To(BeNumerically("==", 2))
		mgrSpec := deploy.Spec.Template.Spec
		ports, err := localrun.FreePorts(8)
		Expect(err).NotTo(HaveOccurred())
		bins := GinkgoT().TempDir()
		managerBin, agentBin, err := localrun.Build(ctx, chartRepoRoot(), bins)
		Expect(err).NotTo(HaveOccurred())
		// The Service the webhook configurations name, routed to the local replicas.
		svcName := name + "-webhook-service"
		var managers []*gexec.Session
		replicaPorts := [][3]int{{ports[0], ports[1], ports[2]}, {ports[5], ports[6], ports[7]}} // webhook, metrics, probes
		for _, p := range replicaPorts {
			mgrArgs := append(slices.Clone(mgrSpec.Containers[0].Args),
				"--kubeconfig="+impersonating(ns, mgrSpec.ServiceAccountName),
				"--leader-election-namespace="+ns, // in a pod: its own namespace
				"--webhook-port="+strconv.Itoa(p[0]),
				"--webhook-cert-dir="+GinkgoT().TempDir(),
				fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", p[1]),
				fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", p[2]))
			managers = append(managers, start(managerBin, mgrArgs, "POD_NAMESPACE="+ns))
		}
		// As in a cluster, where the readiness probe gates the endpoints: a replica joins the
		// Service once its /readyz says its webhook server is serving, not before (else the
		// apiserver may send a request to a replica still writing its certificate).
		for i, p := range replicaPorts {
			expectReady(p[2])
			Expect(env.Client.Create(ctx, &discoveryv1.EndpointSlice{
				ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-local-%d", svcName, i), Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
				AddressType: discoveryv1.AddressTypeIPv4,
				Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
				Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(int32(p[0])), Protocol: ptr.To(corev1.ProtocolTCP)}},
			})).To(Succeed())
		}
		mgr := managers[0]

		By("rejecting a bad quota through the chart's webhooks")
		bad := fmt.Sprintf("apiVersion: checkpointquota.dev/v1alpha1\nkind: CheckpointQuota\nmetadata: {name: bad, namespace: %s}\nspec: {limits: {perPod: {storage: 2GB}}}\n", ns)
		Eventually(func() string {
			_, stderr, _ := env.Kubectl(bad, "apply", "-f", "-")
			return stderr
		}, 90*time.Second, time.Second).Should(SatisfyAll(
			ContainSubstring(`The CheckpointQuota "bad" is invalid`),
			ContainSubstring(`spec.limits.perPod.storage: Invalid value: "2GB"`),
		))
		Expect(mgr).NotTo(gexec.Exit())
		good := strings.Replace(bad, "name: bad", "name: good", 1)
		good = strings.Replace(good, "storage: 2GB", "storage: 2Gi", 1)
		_, stderr, err := env.Kubectl(good, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), stderr)
		var q cqv1.CheckpointQuota
		Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "good"}, &q)).To(Succeed())
		Expect(q.Spec.Enforcement).To(Equal(cqv1.EnforcementEnforce), "the mutating webhook did not default the quota")

		By("running an agent with the DaemonSet's arguments, as its service account")
		var ds appsv1.DaemonSet
		Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name + "-node-agent"}, &ds)).To(Succeed())
		agentSpec := ds.Spec.Template.Spec
		node := ns + "-node"
		Expect(localrun.RegisterNode(ctx, env.Client, node)).To(Succeed())
		dir := GinkgoT().TempDir()
		// The pod template's checkpoint directories are replaced by a local one (the flag is a
		// list: a later one adds to it, it does not replace it).
		agentArgs := append(dropFlag(agentSpec.Containers[0].Args, "--checkpoint-dir="),
			"--kubeconfig="+impersonating(ns, agentSpec.ServiceAccountName),
			"--checkpoint-dir="+dir, "--state-dir="+GinkgoT().TempDir(), "--settle-time=200ms",
			fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", ports[3]),
			fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", ports[4]))
		agent := start(agentBin, agentArgs, "NODE_NAME="+node, "POD_NAMESPACE="+ns)
		path := testarchive.New(ns, "cache-0", "redis").MustWrite(dir)
		Eventually(func(g Gomega) int {
			var list cqv1.CheckpointList
			g.Expect(env.Client.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
			return len(list.Items)
		}, 60*time.Second, 200*time.Millisecond).Should(Equal(1), "the agent did not publish the archive")
		Expect(agent).NotTo(gexec.Exit())

		By("pinning it through a replica, which records the pin on the replicas' ledger with the chart's roles")
		var published cqv1.CheckpointList
		Expect(env.Client.List(ctx, &published, client.InNamespace(ns))).To(Succeed())
		_, stderr, err = env.Kubectl("", "patch", "checkpoint", published.Items[0].Name, "-n", ns, "--type", "merge", "-p", `{"spec":{"pinned":true}}`)
		Expect(err).NotTo(HaveOccurred(), stderr)
		var ledger coordinationv1.Lease
		Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: webhooks.PinLedgerName}, &ledger)).To(Succeed())
		Expect(ledger.Annotations).To(HaveKey("pins.checkpointquota.dev/"+string(published.Items[0].UID)), "the replica that admitted the pin did not record it")

		By("reading the logs: no error-level line, at most one line per replica about a race it lost")
		for i, m := range append(managers, agent) {
			Expect(m).NotTo(gexec.Exit())
			errs, races := errorLines(m)
			Expect(errs).To(BeEmpty(), "process %d logged errors", i)
			for race, n := range races {
				Expect(n).To(BeNumerically("<=", 1), "process %d lost the %s race more than once", i, race)
			}
		}

		By("helm uninstall")
		out, err = runHelm(helmEnv, "uninstall", release, "--namespace", ns)
		Expect(err).NotTo(HaveOccurred())
		uninstalled = true
		Expect(out).To(ContainSubstring("uninstalled"))
		for _, obj := range []client.Object{
			&appsv1.Deployment{ObjectMeta: deploy.ObjectMeta}, &appsv1.DaemonSet{ObjectMeta: ds.ObjectMeta},
		} {
			err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)
			Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%T %s is still there: %v", obj, obj.GetName(), err)
		}
		_, _, err = env.Kubectl("", "get", "validatingwebhookconfiguration", name+"-validating-webhook-configuration")
		Expect(err).To(HaveOccurred(), "the validating webhook configuration outlived the release")
		_, _, err = env.Kubectl("", "get", "clusterrole", name+"-node-agent-role")
		Expect(err).To(HaveOccurred(), "the agent's ClusterRole outlived the release")

		// The agent keeps running a while without its RBAC (as a pod would until deleted):
		// nothing it sees then removes an archive.
		Consistently(func() error { _, err := os.Stat(path); return err }, 5*time.Second, 500*time.Millisecond).Should(Succeed())
		Expect(env.Client.Get(ctx, client.ObjectKey{Name: "checkpoints.checkpointquota.dev"}, &metav1.PartialObjectMetadata{
			TypeMeta: metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"},
		})).To(Succeed(), "helm uninstall removed the CRD")
		var list cqv1.CheckpointList
		Expect(env.Client.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		Expect(list.Items).To(HaveLen(1), "the Checkpoint went with the release")
		agent.Terminate().Wait(10 * time.Second)
		for _, m := range managers {
			m.Terminate().Wait(10 * time.Second)
		}
		Expect(path).To(BeAnExistingFile())
	})
})

// errorLines returns the error-level lines a process has logged so far, and how many lines say
// that it lost a race to another replica, by race: writing the webhook certificate, creating the
// leader election Lease.
func errorLines(s *gexec.Session) (errs []string, races map[string]int) {
	races = map[string]int{}
	for _, line := range strings.Split(string(s.Err.Contents())+string(s.Out.Contents()), "\n") {
		var l struct{ Level, Msg, Error string }
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		switch {
		case strings.HasPrefix(l.Msg, "Another replica wrote"):
			races["certificate"]++
		case lostLeaseCreation(l.Msg, l.Error):
			// client-go's leader election logs at error level when two replicas create the
			// Lease at the same instant; the loser then waits for the lease as usual.
			races["lease"]++
		case l.Level == "error":
			errs = append(errs, line)
		}
	}
	return errs, races
}

// lostLeaseCreation tells client-go's line for a replica whose first create of the leader
// election Lease found it created by another replica.
func lostLeaseCreation(msg, err string) bool {
	return strings.HasPrefix(msg, "Error initially creating lease lock") && strings.HasSuffix(err, "already exists")
}

// start runs a binary with args and extra environment until the spec ends.
func start(bin string, args []string, extraEnv ...string) *gexec.Session {
	GinkgoHelper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), extraEnv...)
	session, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { session.Terminate().Wait(10 * time.Second) })
	return session
}

// impersonating writes a kubeconfig of the test bed acting as a service account.
func impersonating(ns, serviceAccount string) string {
	GinkgoHelper()
	cfg, err := clientcmd.LoadFromFile(env.Kubeconfig)
	Expect(err).NotTo(HaveOccurred())
	for _, u := range cfg.AuthInfos {
		u.Impersonate = "system:serviceaccount:" + ns + ":" + serviceAccount
		u.ImpersonateGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
	}
	path := filepath.Join(GinkgoT().TempDir(), "kubeconfig-"+serviceAccount)
	Expect(clientcmd.WriteToFile(*cfg, path)).To(Succeed())
	return path
}

// hostIP is a non-loopback IPv4 address of this machine (endpoints may not be loopback).
func hostIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP.String()
		}
	}
	return ""
}

// dropFlag returns args without those that start with prefix.
func dropFlag(args []string, prefix string) []string {
	var out []string
	for _, a := range args {
		if !strings.HasPrefix(a, prefix) {
			out = append(out, a)
		}
	}
	return out
}

func chartRepoRoot() string { return filepath.Dir(filepath.Dir(chartDir())) }
