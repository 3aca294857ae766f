package webhooks_test

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// labelledNamespace gives a spec its own namespace, labelled so that a cluster quota of the
// spec selects it alone.
func labelledNamespace() string {
	ns := newNamespace()
	_, stderr, err := env.Kubectl("", "label", "namespace", ns, "spec="+ns)
	Expect(err).NotTo(HaveOccurred(), stderr)
	return ns
}

// createCheckpoints creates n Checkpoints of container app of pod app-0, as an agent would.
func createCheckpoints(ns string, n int, size int64) []string {
	var names []string
	for i := range n {
		name := fmt.Sprintf("app-%d", i)
		c := builder.Checkpoint(name, ns).Of("app-0", "uid-app-0", "app").On("node-a", "/var/lib/kubelet/checkpoints", name+".tar").
			Size(size, fmt.Sprint(size)).At(metav1.NewTime(time.Date(2026, 1, 1, 0, i, 0, 0, time.UTC))).Obj()
		Expect(env.Client.Create(context.Background(), c)).To(Succeed())
		names = append(names, name)
	}
	return names
}

func mustPin(ns, name string, pinned bool) {
	GinkgoHelper()
	stderr, err := pin(ns, name, pinned)
	Expect(err).NotTo(HaveOccurred(), stderr)
}

func pin(ns, name string, pinned bool) (string, error) {
	_, stderr, err := env.Kubectl("", "patch", "checkpoint", name, "-n", ns, "--type", "merge", "-p", fmt.Sprintf(`{"spec":{"pinned":%t}}`, pinned))
	return stderr, err
}

var _ = Describe("pins stay within the limits", func() {
	It("refuses a pin that would put the pinned archives of a namespace over the cluster's limit, with the numbers", func() {
		ns := labelledNamespace()
		_, stderr, err := apply(clusterQuotaYAML("pins-"+ns, fmt.Sprintf("namespaceSelector: {matchLabels: {spec: %s}}\nlimits:\n  perNamespace: {checkpoints: 2}", ns)))
		Expect(err).NotTo(HaveOccurred(), stderr)
		DeferCleanup(func() { _, _, _ = env.Kubectl("", "delete", "clustercheckpointquota", "pins-"+ns) })
		names := createCheckpoints(ns, 3, 1024)

		mustPin(ns, names[0], true)
		mustPin(ns, names[1], true)
		stderr, err = pin(ns, names[2], true)
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring(fmt.Sprintf("pinning %s would make perNamespace.checkpoints 3/2 pinned in %s (ClusterCheckpointQuota pins-%s)", names[2], ns, ns)))
		Expect(stderr).To(ContainSubstring("unpin another archive first"))
		var c cqv1.Checkpoint
		Expect(env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: names[2]}, &c)).To(Succeed())
		Expect(c.Spec.Pinned).To(BeFalse())

		// Unpinning one makes room for another.
		mustPin(ns, names[0], false)
		mustPin(ns, names[2], true)
	})

	It("holds a tenant's own quota above the cluster's limit to the cluster's limit", func() {
		ns := labelledNamespace()
		_, stderr, err := apply(clusterQuotaYAML("pins-"+ns, fmt.Sprintf("namespaceSelector: {matchLabels: {spec: %s}}\nlimits:\n  perNamespace: {storage: 2Ki}", ns)))
		Expect(err).NotTo(HaveOccurred(), stderr)
		DeferCleanup(func() { _, _, _ = env.Kubectl("", "delete", "clustercheckpointquota", "pins-"+ns) })
		_, stderr, err = apply(quotaYAML("mine", ns, "limits:\n  total: {storage: 1Gi}"))
		Expect(err).NotTo(HaveOccurred(), stderr)
		names := createCheckpoints(ns, 3, 1024)

		mustPin(ns, names[0], true)
		mustPin(ns, names[1], true)
		stderr, err = pin(ns, names[2], true)
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring("perNamespace.storage 3Ki/2Ki pinned in " + ns))
	})

	It("lets a Checkpoint's other updates through, pinned or not", func() {
		ns := labelledNamespace()
		_, stderr, err := apply(clusterQuotaYAML("pins-"+ns, fmt.Sprintf("namespaceSelector: {matchLabels: {spec: %s}}\nlimits:\n  perNamespace: {checkpoints: 0}", ns)))
		Expect(err).NotTo(HaveOccurred(), stderr)
		DeferCleanup(func() { _, _, _ = env.Kubectl("", "delete", "clustercheckpointquota", "pins-"+ns) })
		names := createCheckpoints(ns, 1, 1024)
		_, stderr, err = env.Kubectl("", "label", "checkpoint", names[0], "-n", ns, "team=a")
		Expect(err).NotTo(HaveOccurred(), stderr)
	})
})

var _ = Describe("cluster quotas are ceilings", func() {
	It("accepts a namespace quota above the cluster's limit with a warning naming the ceiling", func() {
		ns := labelledNamespace()
		_, stderr, err := apply(clusterQuotaYAML("ceiling-"+ns, fmt.Sprintf("namespaceSelector: {matchLabels: {spec: %s}}\nlimits:\n  perNamespace: {checkpoints: 5}", ns)))
		Expect(err).NotTo(HaveOccurred(), stderr)
		DeferCleanup(func() { _, _, _ = env.Kubectl("", "delete", "clustercheckpointquota", "ceiling-"+ns) })

		_, stderr, err = apply(quotaYAML("mine", ns, "limits:\n  total: {checkpoints: 1000}"))
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(stderr).To(ContainSubstring("Warning: spec.limits.total.checkpoints: capped by ClusterCheckpointQuota ceiling-" + ns + " at 5"))
	})
})

// createStored creates n Checkpoints of container app of pod app-0 whose archives are in a
// store (status.location), as an agent records them after an offload.
func createStored(ns string, n int) []string {
	var names []string
	for i := range n {
		name := fmt.Sprintf("stored-%d", i)
		at := metav1.NewTime(time.Date(2026, 1, 1, 0, i, 0, 0, time.UTC))
		c := builder.Checkpoint(name, ns).Of("app-0", "uid-app-0", "app").On("node-a", "/var/lib/kubelet/checkpoints", name+".tar").
			Size(1024, "1024").At(at).StoredIn("archive", ns+"/app-0/app/"+name+".tar", at).Obj()
		status := c.Status
		Expect(env.Client.Create(context.Background(), c)).To(Succeed())
		c.Status = status
		Expect(env.Client.Status().Update(context.Background(), c)).To(Succeed())
		names = append(names, name)
	}
	return names
}

var _ = Describe("pins of stored archives", func() {
	It("hold stored archives to remoteLimits and those on nodes to limits, each tier apart", func() {
		ns := labelledNamespace()
		_, stderr, err := apply(clusterQuotaYAML("pins-"+ns, fmt.Sprintf("namespaceSelector: {matchLabels: {spec: %s}}\n"+
			"limits:\n  perNamespace: {checkpoints: 1}\nremoteLimits:\n  perNamespace: {checkpoints: 2}", ns)))
		Expect(err).NotTo(HaveOccurred(), stderr)
		DeferCleanup(func() { _, _, _ = env.Kubectl("", "delete", "clustercheckpointquota", "pins-"+ns) })
		onNode := createCheckpoints(ns, 2, 1024)
		stored := createStored(ns, 3)

		mustPin(ns, onNode[0], true)
		stderr, err = pin(ns, onNode[1], true)
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring(fmt.Sprintf("pinning %s would make perNamespace.checkpoints 2/1 pinned in %s", onNode[1], ns)))

		// The pinned archive on the node does not count in the store.
		mustPin(ns, stored[0], true)
		mustPin(ns, stored[1], true)
		stderr, err = pin(ns, stored[2], true)
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring(fmt.Sprintf("pinning %s would make remoteLimits.perNamespace.checkpoints 3/2 pinned in %s (ClusterCheckpointQuota pins-%s)", stored[2], ns, ns)))
	})
})
