package webhooks_test

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("remoteLimits", func() {
	It("rejects a malformed value naming the field under spec.remoteLimits", func() {
		ns := newNamespace()
		_, stderr, err := apply(quotaYAML("bad", ns, "remoteLimits:\n  perPod: {storage: 2GB}\n  maxAge: 30d"))
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring(`The CheckpointQuota "bad" is invalid:`))
		Expect(stderr).To(ContainSubstring(`spec.remoteLimits.perPod.storage: Invalid value: "2GB": not a quantity: did you mean "2Gi"?`))
		Expect(stderr).To(ContainSubstring(`spec.remoteLimits.maxAge: Invalid value: "30d": not a duration: Go durations have no days or weeks; write "720h"`))
	})

	It("refuses a negative count in the schema, with the webhook's message", func() {
		ns := newNamespace()
		_, stderr, err := apply(quotaYAML("negative", ns, "remoteLimits:\n  total: {checkpoints: -1}"))
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring("spec.remoteLimits.total.checkpoints: Invalid value"))
		Expect(stderr).To(ContainSubstring("must be 0 or more: 0 prunes every unpinned archive"))
	})

	It("rejects a second quota setting the same remote limit, naming the first", func() {
		ns := newNamespace()
		_, stderr, err := apply(quotaYAML("first", ns, "remoteLimits:\n  total: {checkpoints: 20}"))
		Expect(err).NotTo(HaveOccurred(), stderr)
		// The node limit and the remote limit of the same level are different limits.
		_, stderr, err = apply(quotaYAML("nodes", ns, "limits:\n  total: {checkpoints: 5}"))
		Expect(err).NotTo(HaveOccurred(), stderr)
		_, stderr, err = apply(quotaYAML("second", ns, "remoteLimits:\n  total: {checkpoints: 10}"))
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring(`spec.remoteLimits.total.checkpoints: Invalid value: "10"`))
		Expect(stderr).To(ContainSubstring(fmt.Sprintf("conflicts with CheckpointQuota %s/first, which sets remoteLimits.total.checkpoints to 20", ns)))
	})

	It("warns that a namespace's remoteLimits above the cluster's are capped, naming the ceiling", func() {
		ns := newNamespace()
		_, stderr, err := env.Kubectl("", "label", "namespace", ns, "remote-ceiling=spec")
		Expect(err).NotTo(HaveOccurred(), stderr)
		_, stderr, err = apply(clusterQuotaYAML("remote-ceiling", "namespaceSelector: {matchLabels: {remote-ceiling: spec}}\n"+
			"remoteLimits:\n  perNamespace: {checkpoints: 5, storage: 1Gi}\n  maxAge: 720h"))
		Expect(err).NotTo(HaveOccurred(), stderr)
		DeferCleanup(deleteClusterQuota, "remote-ceiling")
		Expect(stderr).To(ContainSubstring("Warning: spec: in force: orphans=Retain, remoteLimits.perNamespace.checkpoints=5, remoteLimits.perNamespace.storage=1Gi"))

		_, stderr, err = apply(quotaYAML("mine", ns, "remoteLimits:\n  total: {checkpoints: 100, storage: 500Mi}\n  maxAge: 8760h"))
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(stderr).To(ContainSubstring("Warning: spec.remoteLimits.total.checkpoints: capped by ClusterCheckpointQuota remote-ceiling at 5, the cluster's ceiling"))
		Expect(stderr).To(ContainSubstring("Warning: spec.remoteLimits.maxAge: capped by ClusterCheckpointQuota remote-ceiling at 720h, the cluster's ceiling"))
		Expect(stderr).To(ContainSubstring("Warning: spec: in force: orphans=Retain, remoteLimits.total.storage=500Mi"))
	})
})
