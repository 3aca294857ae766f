package node

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
)

// rendered is config/<overlay> as `kubectl kustomize` renders it, with what `make deploy`
// replaces (the image) and where this node keeps its files instead of /var/lib.
func rendered(overlay string) string {
	GinkgoHelper()
	out := mustKubectl("", "kustomize", filepath.Join(root, "config", overlay))
	return strings.NewReplacer(
		"image: checkpoint-quota:latest", "image: "+node["NODE_IMAGE"],
		"imagePullPolicy: IfNotPresent", "imagePullPolicy: Never",
		"/var/lib/kubelet/checkpoints", node["CHECKPOINT_DIR"],
		"/var/lib/checkpoint-quota/agent", node["AGENT_STATE_DIR"],
	).Replace(out)
}

// waitForOperator waits until the manager Deployment is available and every agent is ready.
func waitForOperator() {
	GinkgoHelper()
	for _, kind := range []string{"deployment", "daemonset"} {
		names := strings.Fields(mustKubectl("", "get", kind, "-n", systemNS, "-o", "name"))
		Expect(names).NotTo(BeEmpty(), "no %s in %s", kind, systemNS)
		for _, name := range names {
			mustKubectl("", "rollout", "status", "-n", systemNS, name, "--timeout=5m")
		}
	}
}

var _ = Describe("Installed with kustomize, config/no-cert-manager", Ordered, func() {
	const ns = "kshop"
	var manifests string
	var pods []*corev1.Pod

	BeforeAll(func(ctx context.Context) {
		manifests = rendered("no-cert-manager")
		mustKubectl(manifests, "apply", "--server-side", "-f", "-")
		DeferCleanup(func() {
			_, _, _ = kubectl(manifests, "delete", "--ignore-not-found", "--wait", "--timeout=3m", "-f", "-")
		})
		waitForOperator()
		createNamespace(ctx, ns)
		pods = []*corev1.Pod{workloadPod(ns, "web-0", 8), workloadPod(ns, "web-1", 8)}
		startPods(ctx, pods...)
	}, NodeTimeout(10*time.Minute))

	It("refuses a malformed quota through the webhook Service, with the fix, not a TLS failure", func() {
		expectWebhookRefusal(ns)
	})

	It("publishes every archive on the node and prunes a namespace to its total", func(ctx context.Context) {
		expectPrunedToTotal(ctx, ns, pods, 3, 3)
	}, NodeTimeout(5*time.Minute))

	It("keeps every archive when the whole overlay is deleted", func(_ context.Context) {
		before := archives()
		mustKubectl(manifests, "delete", "--ignore-not-found", "--wait", "--timeout=3m", "-f", "-")
		Eventually(func() string {
			out, _, _ := kubectl("", "get", "pods", "-n", systemNS, "-o", "name")
			return out
		}, 2*time.Minute).Should(BeEmpty())
		Expect(archives()).To(Equal(before))
	}, NodeTimeout(5*time.Minute))
})

// expectPrunedToTotal applies a quota of total checkpoints to the namespace, takes rounds of
// checkpoints of every pod, and expects the newest total archives kept on the disk, and every
// archive on the node, this lane's and those an earlier install left, published.
func expectPrunedToTotal(ctx context.Context, ns string, pods []*corev1.Pod, rounds, total int) {
	GinkgoHelper()
	applyQuota(fmt.Sprintf(`apiVersion: checkpointquota.dev/v1alpha1
kind: CheckpointQuota
metadata: {name: total, namespace: %s}
spec: {limits: {total: {checkpoints: %d}}}
`, ns, total))
	var taken []checkpointed
	var last time.Time
	for range rounds {
		for _, p := range pods {
			// The kubelet names archives to the second: each call starts in a second after the
			// previous answer's, so that the archives' times follow the calls' order (on a busy
			// machine two calls a round apart once shared a second, and "newest" was a tie).
			time.Sleep(time.Until(last.Truncate(time.Second).Add(time.Second)))
			c, err := checkpoint(ns, p.Name, "work")
			Expect(err).NotTo(HaveOccurred())
			taken = append(taken, c)
			last = c.answered
		}
	}
	var newest []string
	for _, c := range taken[len(taken)-total:] {
		newest = append(newest, filepath.Base(c.path))
	}
	Eventually(func(g Gomega) {
		onDisk := archivesOf(ns)
		g.Expect(onDisk).To(HaveEach(Not(BeEmpty())))
		g.Expect(keys(onDisk)).To(ConsistOf(newest))
		byFile := checkpointsByFile(ctx, g, "")
		for file := range archives() {
			g.Expect(byFile).To(HaveKey(file))
		}
	}, 3*time.Minute).Should(Succeed())
}

// expectWebhookRefusal applies a quota that the CRD's schema accepts and the validating
// webhook refuses (maxCheckpointSize 0 contradicts a count limit), so that the answer can
// only come from the manager's pod, reached through the webhook Service. The webhook answers
// with a field error (kubectl: `The CheckpointQuota "bad" is invalid`), with the fix; an
// unreachable one or a TLS failure would read `failed calling webhook`.
func expectWebhookRefusal(ns string) {
	GinkgoHelper()
	bad := "apiVersion: checkpointquota.dev/v1alpha1\nkind: CheckpointQuota\nmetadata: {name: bad, namespace: " + ns + "}\n" +
		"spec: {limits: {total: {checkpoints: 5}}, maxCheckpointSize: \"0\"}\n"
	Eventually(func(g Gomega) {
		_, stderr, err := kubectl(bad, "apply", "-f", "-")
		g.Expect(err).To(HaveOccurred())
		g.Expect(stderr).NotTo(ContainSubstring("failed calling webhook"))
		g.Expect(stderr).To(ContainSubstring(`The CheckpointQuota "bad" is invalid`))
		g.Expect(stderr).To(ContainSubstring("maxCheckpointSize 0 prunes every archive"))
	}, 2*time.Minute).Should(Succeed())
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
