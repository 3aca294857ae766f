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
		Eventually(func() []string { return remaining(ns) }).Should(HaveLen(2))
		Eventually(quotaStatus(ns, "default")).Should(HaveField("Pruned.Checkpoints", BeEquivalentTo(3)))

		Eventually(func() string {
			out, _, err := env.Kubectl("", "get", "cpq", "-n", ns)
			Expect(err).NotTo(HaveOccurred())
			return out
		}).Should(MatchRegexp(`(?m)^NAME\s+CHECKPOINTS\s+STORAGE\s+ENFORCEMENT\s+AGE\n default\s+2/2\s+6Mi/10Mi\s+`[:0] +
			`(?m)^NAME\s+CHECKPOINTS\s+STORAGE\s+ENFORCEMENT\s+AGE\ndefault\s+2/2\s+6Mi/10Mi\s+`))

		out, stderr, err := env.Kubectl("", "describe", "checkpointquota", "default", "-n", ns)
		Expect(err).NotTo(HaveOccurred(), stderr)
		GinkgoWriter.Println(out)
		Expect(out).To(SatisfyAll(
			MatchRegexp(`(?m)^\s+Hard:\n\s+perContainer\.checkpoints:\s+2\n\s+total\.storage:\s+10Mi$`),
			MatchRegexp(`(?m)^\s+Used:\n\s+perContainer\.checkpoints:\s+2\n\s+total\.storage:\s+6Mi$`),
			MatchRegexp(`Normal\s+Pruned\s+.*Pruned 3 checkpoints \(9Mi\) of `+ns+`/cache-0/redis: perContainer\.checkpoints 5/2`),
		))
	})
})
