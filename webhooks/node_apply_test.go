package webhooks_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("node rules at admission, through kubectl apply", func() {
	It("rejects bad floors and per-node limits with the field path and a fix", func() {
		cases := map[string]string{
			"nodeFilesystem: {minFree: 150%}":       `spec.nodeFilesystem.minFree: Invalid value: "150%": is more than the whole filesystem: write a percentage from 0% to 100%`,
			"nodeFilesystem: {minFree: 50}":         `spec.nodeFilesystem.minFree: Invalid value: 50: has no unit: write a quantity such as "50Gi", or a share of the filesystem such as "15%"`,
			"nodeFilesystem: {minFree: 12.5%}":      `spec.nodeFilesystem.minFree: Invalid value: "12.5%": not a percentage: write a whole number from 0 to 100 and "%"`,
			"nodeFilesystem: {minFree: 50GB}":       `spec.nodeFilesystem.minFree: Invalid value: "50GB": not a quantity: did you mean "50Gi"?`,
			"limits:\n  perNode: {storage: 10GB}":   `spec.limits.perNode.storage: Invalid value: "10GB": not a quantity: did you mean "10Gi"?`,
			"limits:\n  perNode: {storage: \"10\"}": `spec.limits.perNode.storage: Invalid value: "10": has no unit, so it means bytes`,
		}
		for spec, want := range cases {
			_, stderr, err := apply(clusterQuotaYAML("bad-node", spec))
			Expect(err).To(HaveOccurred(), spec)
			Expect(stderr).To(ContainSubstring(`The ClusterCheckpointQuota "bad-node" is invalid: `+want), spec)
		}
	})

	It("accepts a floor as a quantity or a percentage and warns about what is legal but odd", func() {
		_, stderr, err := apply(clusterQuotaYAML("floor-gi", "nodeFilesystem: {minFree: 50Gi}"))
		Expect(err).NotTo(HaveOccurred(), stderr)
		DeferCleanup(deleteClusterQuota, "floor-gi")
		_, stderr, err = apply(clusterQuotaYAML("floor-pct", "nodeFilesystem: {minFree: 15%}\nlimits:\n  total: {storage: 10Gi}\n  perNode: {storage: 20Gi}"))
		Expect(err).NotTo(HaveOccurred(), stderr)
		DeferCleanup(deleteClusterQuota, "floor-pct")
		Expect(stderr).To(ContainSubstring("Warning: spec.limits.perNode.storage: 20Gi is above spec.limits.total.storage 10Gi: lower it to at most the total\n"))
		Expect(stderr).To(ContainSubstring("Warning: spec.nodeFilesystem.minFree: ClusterCheckpointQuota floor-gi also sets 50Gi: the larger floor holds\n"))

		_, stderr, err = apply(clusterQuotaYAML("node-zero", "limits:\n  perNode: {checkpoints: 0}"))
		Expect(err).NotTo(HaveOccurred(), stderr)
		DeferCleanup(deleteClusterQuota, "node-zero")
		Expect(stderr).To(ContainSubstring("Warning: spec.limits.perNode.checkpoints: 0 prunes every unpinned archive on every node"))
	})
})
