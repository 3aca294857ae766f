package webhooks_test

import (
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// GitOps tools (and a person re-running kubectl apply) compare what is stored with what is in
// the repository: the webhook must leave every value the user wrote as written.
var _ = Describe("GitOps without drift", func() {
	samples := filepath.Join(testenv.RepoRoot(), "config", "samples")

	DescribeTable("a second apply of the samples changes nothing",
		func(ctx SpecContext, serverSide bool) {
			ns := newNamespace()
			DeferCleanup(deleteClusterQuota, "default")
			var args []string
			if serverSide {
				args = []string{"--server-side"}
			}
			apply := append([]string{"apply", "-n", ns, "-k", samples}, args...)

			out, stderr, err := env.Kubectl("", apply...)
			Expect(err).NotTo(HaveOccurred(), stderr)
			Expect(out).To(ContainSubstring("clustercheckpointquota.checkpointquota.dev/default"))
			var before cqv1.CheckpointQuota
			Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "default"}, &before)).To(Succeed())
			Expect(before.Spec.Limits.Total.Storage).To(HaveValue(Equal(cqv1.Size("1000Mi"))), "the stored size is not the one written")

			out, stderr, err = env.Kubectl("", apply...)
			Expect(err).NotTo(HaveOccurred(), stderr)
			if !serverSide { // server-side apply prints "serverside-applied" either way
				Expect(out).To(SatisfyAll(
					ContainSubstring("clustercheckpointquota.checkpointquota.dev/default unchanged"),
					ContainSubstring("checkpointquota.checkpointquota.dev/default unchanged"),
				))
			}
			var after cqv1.CheckpointQuota
			Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "default"}, &after)).To(Succeed())
			Expect(after.ResourceVersion).To(Equal(before.ResourceVersion), "the second apply wrote the quota")

			// kubectl diff is what Argo CD and Flux do in effect: no difference, exit code 0.
			diff := append([]string{"diff", "-n", ns, "-k", samples}, args...)
			out, stderr, err = env.Kubectl("", diff...)
			Expect(err).NotTo(HaveOccurred(), "kubectl diff found drift:\n%s%s", out, stderr)
		},
		Entry("client-side apply", false),
		Entry("server-side apply", true),
	)

	It("keeps a size in any spelling as written", func(ctx SpecContext) {
		ns := newNamespace()
		manifest := quotaYAML("spelled", ns, "limits:\n  total: {storage: 1024Mi}\n  perPod: {storage: 1000M}\nmaxCheckpointSize: 0.5Gi")
		_, stderr, err := apply(manifest)
		Expect(err).NotTo(HaveOccurred(), stderr)
		out, stderr, err := apply(manifest)
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(out).To(ContainSubstring("checkpointquota.checkpointquota.dev/spelled unchanged"))
		var q cqv1.CheckpointQuota
		Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "spelled"}, &q)).To(Succeed())
		Expect(q.Spec.Limits.Total.Storage).To(HaveValue(Equal(cqv1.Size("1024Mi"))))
		Expect(q.Spec.Limits.PerPod.Storage).To(HaveValue(Equal(cqv1.Size("1000M"))))
		Expect(q.Spec.MaxCheckpointSize).To(HaveValue(Equal(cqv1.Size("0.5Gi"))))
	})
})
