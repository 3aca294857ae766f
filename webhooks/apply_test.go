package webhooks_test

import (
	"context"
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

var _ = Describe("conflicting quotas", func() {
	It("rejects a second namespace quota setting the same limit, naming the first", func() {
		ns := newNamespace()
		_, stderr, err := apply(quotaYAML("first", ns, "limits:\n  total: {checkpoints: 20}"))
		Expect(err).NotTo(HaveOccurred(), stderr)

		_, stderr, err = apply(quotaYAML("second", ns, "limits:\n  total: {checkpoints: 10, storage: 1Gi}"))
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring(`The CheckpointQuota "second" is invalid: spec.limits.total.checkpoints: Invalid value: "10"`))
		Expect(stderr).To(ContainSubstring(fmt.Sprintf("conflicts with CheckpointQuota %s/first, which sets total.checkpoints to 20", ns)))
		Expect(stderr).To(ContainSubstring("set it in one quota only, or make their targets disjoint"))
		err = env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "second"}, &cqv1.CheckpointQuota{})
		Expect(err).To(HaveOccurred())
	})

	It("rejects overlapping pod names and accepts disjoint ones", func() {
		ns := newNamespace()
		_, stderr, err := apply(quotaYAML("cache", ns, "target: {podNames: [cache-0, cache-1]}\nlimits:\n  perPod: {storage: 5Gi}"))
		Expect(err).NotTo(HaveOccurred(), stderr)

		_, stderr, err = apply(quotaYAML("overlap", ns, "target: {podNames: [cache-1, cache-2]}\nlimits:\n  perPod: {storage: 2Gi}"))
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring(`spec.limits.perPod.storage: Invalid value: "2Gi"`))
		Expect(stderr).To(ContainSubstring(fmt.Sprintf("conflicts with CheckpointQuota %s/cache, which sets perPod.storage to 5Gi", ns)))

		_, stderr, err = apply(quotaYAML("disjoint", ns, "target: {podNames: [cache-2, cache-3]}\nlimits:\n  perPod: {storage: 2Gi}"))
		Expect(err).NotTo(HaveOccurred(), stderr)
	})

	It("rejects overlapping container names and accepts disjoint ones", func() {
		ns := newNamespace()
		_, stderr, err := apply(quotaYAML("redis", ns, "target: {containerNames: [redis]}\nlimits:\n  perContainer: {checkpoints: 10}"))
		Expect(err).NotTo(HaveOccurred(), stderr)
		_, stderr, err = apply(quotaYAML("redis2", ns, "target: {containerNames: [redis, sentinel]}\nlimits:\n  perContainer: {checkpoints: 3}"))
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring(fmt.Sprintf("conflicts with CheckpointQuota %s/redis", ns)))
		_, stderr, err = apply(quotaYAML("sentinel", ns, "target: {containerNames: [sentinel]}\nlimits:\n  perContainer: {checkpoints: 3}"))
		Expect(err).NotTo(HaveOccurred(), stderr)
	})

	It("lets an update of a quota through: it never conflicts with itself", func() {
		ns := newNamespace()
		_, stderr, err := apply(quotaYAML("q", ns, "limits:\n  total: {checkpoints: 20}"))
		Expect(err).NotTo(HaveOccurred(), stderr)
		_, stderr, err = apply(quotaYAML("q", ns, "limits:\n  total: {checkpoints: 10}"))
		Expect(err).NotTo(HaveOccurred(), stderr)
		var q cqv1.CheckpointQuota
		Expect(env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "q"}, &q)).To(Succeed())
		Expect(*q.Spec.Limits.Total.Checkpoints).To(Equal(int64(10)))
	})

	It("rejects a second cluster quota with the same namespace selector, and accepts a different one", func() {
		_, stderr, err := apply(clusterQuotaYAML("team-a", "namespaceSelector: {matchLabels: {team: a}}\nmaxAge: 168h"))
		Expect(err).NotTo(HaveOccurred(), stderr)
		DeferCleanup(deleteClusterQuota, "team-a")

		_, stderr, err = apply(clusterQuotaYAML("team-a-too", "namespaceSelector: {matchLabels: {team: a}}\nmaxAge: 24h"))
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring(`The ClusterCheckpointQuota "team-a-too" is invalid: spec.maxAge: Invalid value: "24h"`))
		Expect(stderr).To(ContainSubstring("conflicts with ClusterCheckpointQuota team-a, which sets maxAge to 168h"))

		_, stderr, err = apply(clusterQuotaYAML("team-b", "namespaceSelector: {matchLabels: {team: b}}\nmaxAge: 24h"))
		Expect(err).NotTo(HaveOccurred(), stderr)
		DeferCleanup(deleteClusterQuota, "team-b")
	})
})

func deleteClusterQuota(ctx context.Context, name string) {
	q := &cqv1.ClusterCheckpointQuota{}
	q.Name = name
	Expect(client.IgnoreNotFound(env.Client.Delete(ctx, q))).To(Succeed())
}

var _ = Describe("warnings on kubectl apply", func() {
	DescribeTable("each suspicious setting is named on stderr",
		func(spec string, want ...string) {
			ns := newNamespace()
			_, stderr, err := apply(quotaYAML("odd", ns, spec))
			Expect(err).NotTo(HaveOccurred(), stderr)
			for _, w := range want {
				Expect(stderr).To(ContainSubstring("Warning: " + w))
			}
		},
		Entry("per container above per pod", "limits:\n  perPod: {checkpoints: 5}\n  perContainer: {checkpoints: 10}",
			"spec.limits.perContainer.checkpoints: 10 is above spec.limits.perPod.checkpoints 5, so it never binds"),
		Entry("maxCheckpointSize above a total", "limits:\n  total: {storage: 1Gi}\nmaxCheckpointSize: 2Gi",
			"spec.maxCheckpointSize: 2Gi is above spec.limits.total.storage 1Gi, so such an archive is always pruned"),
		Entry("checkpoints: 0", "limits:\n  perPod: {checkpoints: 0}",
			"spec.limits.perPod.checkpoints: 0 prunes every unpinned archive"),
		Entry("an empty pod selector", "target: {podSelector: {}}\nlimits:\n  perPod: {checkpoints: 3}",
			"spec.target.podSelector: {} selects every pod, as if left out"),
	)

	It("summarises the effective policy, naming the overriding and the overridden quota", func() {
		// Other specs leave quotas in their namespaces: select only this spec's namespace.
		ns := newNamespace()
		_, stderr, err := env.Kubectl("", "label", "namespace", ns, "effective-policy=spec")
		Expect(err).NotTo(HaveOccurred(), stderr)
		selector := "namespaceSelector: {matchLabels: {effective-policy: spec}}\n"
		_, stderr, err = apply(clusterQuotaYAML("default", selector+"limits:\n  perNamespace: {checkpoints: 100}\n  perPod: {checkpoints: 20}"))
		Expect(err).NotTo(HaveOccurred(), stderr)
		DeferCleanup(deleteClusterQuota, "default")
		Expect(stderr).To(ContainSubstring("Warning: spec: in force: perNamespace.checkpoints=100, perPod.checkpoints=20"))

		_, stderr, err = apply(quotaYAML("shop", ns, "limits:\n  total: {checkpoints: 50}"))
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(stderr).To(ContainSubstring("Warning: spec: in force: total.checkpoints=50"))
		Expect(stderr).NotTo(ContainSubstring("total.checkpoints: overrides ClusterCheckpointQuota"))

		_, stderr, err = apply(quotaYAML("cache", ns, "target: {podNames: [cache-0]}\nlimits:\n  perPod: {checkpoints: 5}"))
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(stderr).To(ContainSubstring("Warning: spec: in force: perPod.checkpoints=5"))

		// Re-applying the cluster quota compares it with cluster quotas only: the namespaced
		// quotas only tighten it in their namespaces, and reading every namespace's quotas
		// would make its admission cost grow with what tenants write (docs/admission.md).
		_, stderr, err = apply(clusterQuotaYAML("default", selector+"limits:\n  perNamespace: {checkpoints: 90}\n  perPod: {checkpoints: 20}"))
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(stderr).To(ContainSubstring("Warning: spec: in force: perNamespace.checkpoints=90, perPod.checkpoints=20"))
		Expect(stderr).NotTo(ContainSubstring("CheckpointQuota " + ns))

		// Lowering the cluster quota below the namespace's: the cluster quota's limits stay in
		// force, and the namespace's quota is capped by them.
		_, stderr, err = apply(clusterQuotaYAML("default", selector+"limits:\n  perNamespace: {checkpoints: 30}\n  perPod: {checkpoints: 4}"))
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(stderr).To(ContainSubstring("Warning: spec: in force: perNamespace.checkpoints=30, perPod.checkpoints=4"))
		_, stderr, err = apply(quotaYAML("shop", ns, "limits:\n  total: {checkpoints: 50}\n  perPod: {checkpoints: 6}"))
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(stderr).To(ContainSubstring("Warning: spec.limits.total.checkpoints: capped by ClusterCheckpointQuota default at 30, the cluster's ceiling"))
		Expect(stderr).To(ContainSubstring("Warning: spec.limits.perPod.checkpoints: capped by ClusterCheckpointQuota default at 4, the cluster's ceiling"))
	})
})

var _ = Describe("defaults", func() {
	It("fills what was left empty, keeps sizes as written, and a second apply says unchanged", func() {
		ctx := context.Background()
		ns := newNamespace()
		manifest := quotaYAML("minimal", ns, "limits:\n  total: {storage: 1024Mi}\nmaxCheckpointSize: 1000M")
		_, stderr, err := apply(manifest)
		Expect(err).NotTo(HaveOccurred(), stderr)

		out, stderr, err := env.Kubectl("", "get", "cpq", "minimal", "-n", ns, "-o", "yaml")
		Expect(err).NotTo(HaveOccurred(), stderr)
		for _, want := range []string{
			"enforcement: Enforce",
			"gracePeriod: 10m",
			"policy: Retain",
			"storage: 1024Mi",
			"maxCheckpointSize: 1000M",
		} {
			Expect(out).To(ContainSubstring(want))
		}

		var before cqv1.CheckpointQuota
		Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "minimal"}, &before)).To(Succeed())
		out, stderr, err = apply(manifest)
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(out).To(ContainSubstring("checkpointquota.checkpointquota.dev/minimal unchanged"))
		var after cqv1.CheckpointQuota
		Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "minimal"}, &after)).To(Succeed())
		Expect(after.Spec).To(Equal(before.Spec))
		Expect(after.ResourceVersion).To(Equal(before.ResourceVersion), "the second apply wrote the object")
		Expect(after.Generation).To(Equal(before.Generation))
	})

	It("never overwrites what the user set", func() {
		ns := newNamespace()
		_, stderr, err := apply(quotaYAML("set", ns, "enforcement: DryRun\norphans: {policy: Delete, gracePeriod: 1h}"))
		Expect(err).NotTo(HaveOccurred(), stderr)
		var q cqv1.CheckpointQuota
		Expect(env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "set"}, &q)).To(Succeed())
		Expect(q.Spec.Enforcement).To(Equal(cqv1.EnforcementDryRun))
		Expect(q.Spec.Orphans.Policy).To(Equal(cqv1.OrphanDelete))
		Expect(*q.Spec.Orphans.GracePeriod).To(Equal(cqv1.Duration("1h")))
	})
})
