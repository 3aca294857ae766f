package controllers_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

var _ = Describe("What kubectl shows", func() {
	It("prints used/hard columns and describes used and hard per level with a Pruned event", func() {
		ns := newNamespace("kubectl")
		now := fakeClock.Now()
		series(ns, "cache-0", "redis", 5, 3*mi, now, "")
		create(builder.Quota("default", ns).PerContainer(2, "").Total(-1, "10Mi").Obj())
		Eventually(func(g Gomega) []string { return remaining(g, ns) }).Should(HaveLen(2))
		Eventually(quotaStatus(ns, "default")).Should(HaveField("Pruned.Checkpoints", BeEquivalentTo(3)))

		// No webhook defaults spec.enforcement in this suite: that column is empty.
		Eventually(func(g Gomega) string {
			out, _, err := env.Kubectl("", "get", "cpq", "-n", ns)
			g.Expect(err).NotTo(HaveOccurred())
			return out
		}).Should(MatchRegexp(`(?m)^NAME\s+CHECKPOINTS\s+STORAGE\s+STORED\s+ENFORCEMENT\s+READY\s+AGE\ndefault\s+2/2\s+6Mi/10Mi\s+True\s+\d+s$`))

		out, stderr, err := env.Kubectl("", "describe", "checkpointquota", "default", "-n", ns)
		Expect(err).NotTo(HaveOccurred(), stderr)
		GinkgoWriter.Println(out)
		Expect(out).To(SatisfyAll(
			// The ResourceQuota-like block: a header, then the limits widest scope first.
			MatchRegexp(`(?m)^\s+Usage Table:\n\s+LIMIT\s+USED\s+HARD\s+NEAREST\s+POLICY\n`+
				`\s+total\.storage\s+6Mi\s+10Mi\s+`+ns+`\s+in force\n`+
				`\s+perContainer\.checkpoints\s+2\s+2\s+`+ns+`/cache-0/redis\s+in force\n`),
			MatchRegexp(`(?m)^\s+Hard:\n\s+perContainer\.checkpoints:\s+2\n\s+total\.storage:\s+10Mi$`),
			MatchRegexp(`(?m)^\s+Used:\n\s+perContainer\.checkpoints:\s+2\n\s+total\.storage:\s+6Mi$`),
			MatchRegexp(`Normal\s+Pruned\s+.*Pruned 3 checkpoints \(9Mi\) of `+ns+`/cache-0/redis: perContainer\.checkpoints 5/2`),
		))
	})

	It("keeps the spec as written and shows its limits canonically in status", func() {
		ns := newNamespace("canonical")
		create(builder.Quota("spelled", ns).Total(-1, "1024Mi").PerPod(-1, "1000M").Obj())
		Eventually(quotaStatus(ns, "spelled")).Should(HaveField("UsageTable", ContainElements(
			MatchRegexp(`^total\.storage\s+0\s+1Gi\s+`), MatchRegexp(`^perPod\.storage\s+0\s+1G\s+`))))
		out, stderr, err := env.Kubectl("", "get", "cpq", "spelled", "-n", ns, "-o", "jsonpath={.spec.limits.total.storage} {.spec.limits.perPod.storage} {.status.hard.total\\.storage}")
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(out).To(Equal("1024Mi 1000M 1Gi"))
	})
})
