package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// pastAdmission labels the one quota that the validating webhooks skip while a spec stores
// a value they reject, as a quota written under an older version's rules would be stored.
const pastAdmission = "e2e.checkpointquota.dev/past-admission"

var _ = Describe("A quota whose spec does not parse", func() {
	It("shows nothing of its previous spec in kubectl get, kubectl describe and kubectl checkpoint-quota status", func(ctx SpecContext) {
		plugin := filepath.Join(GinkgoT().TempDir(), "kubectl-checkpoint_quota")
		build := exec.CommandContext(ctx, "go", "build", "-o", plugin, "./cmd/kubectl-checkpoint_quota")
		build.Dir = testenv.RepoRoot()
		built, err := build.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(built))

		ns, err := env.CreateNamespace(ctx, "unparsed")
		Expect(err).NotTo(HaveOccurred())
		uid := createPod(ctx, ns, "cache-0", "redis")
		quota := "apiVersion: checkpointquota.dev/v1alpha1\nkind: CheckpointQuota\n" +
			"metadata: {name: team, namespace: " + ns + ", labels: {" + pastAdmission + ": \"true\"}}\n" +
			"spec: {enforcement: DryRun, maxAge: %s, limits: {perContainer: {checkpoints: 1}, total: {storage: 10Mi}}}\n"
		_, stderr, err := env.Kubectl(strings.Replace(quota, "%s", "168h", 1), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), stderr)
		base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
		for i := range 2 {
			archive.New(ns, "cache-0", "redis").WithUID(uid).WithSize(1 << 20).At(base.Add(time.Duration(i) * time.Minute)).MustWrite(ckptDir)
		}
		get := func(g Gomega) string {
			out, stderr, err := env.Kubectl("", "get", "cpq", "team", "-n", ns)
			g.Expect(err).NotTo(HaveOccurred(), stderr)
			return out
		}
		Eventually(get, 60*time.Second, time.Second).Should(MatchRegexp(`(?m)^team\s+2/1\s+2Mi/10Mi\s+DryRun\s+True\s+`))

		By("storing maxAge: 7d past the webhooks")
		withoutValidation(ctx, func() error {
			_, stderr, err := env.Kubectl(strings.Replace(quota, "%s", "7d", 1), "apply", "-f", "-")
			if err != nil {
				return &kubectlError{stderr}
			}
			return nil
		})

		By("kubectl get: no used/hard, and Ready False")
		Eventually(get, 30*time.Second, time.Second).Should(MatchRegexp(`(?m)^NAME\s+CHECKPOINTS\s+STORAGE\s+STORED\s+ENFORCEMENT\s+READY\s+AGE\nteam\s+DryRun\s+False\s+`))

		By("kubectl describe: the parse error, and no value of the previous spec in status")
		out, stderr, err := env.Kubectl("", "describe", "cpq", "team", "-n", ns)
		Expect(err).NotTo(HaveOccurred(), stderr)
		_, status, found := strings.Cut(out, "\nStatus:\n")
		Expect(found).To(BeTrue(), out)
		// The events below the status are history: the WouldPrune of the previous spec stays.
		status, _, _ = strings.Cut(status, "\nEvents:")
		Expect(status).To(SatisfyAll(
			ContainSubstring(`spec.maxAge: time: unknown unit "d" in duration "7d"; fix the field so that the quota can be enforced`),
			MatchRegexp(`Reason:\s+InvalidSpec\n\s+Status:\s+False\n\s+Type:\s+Ready`),
			MatchRegexp(`Reason:\s+InvalidSpec\n\s+Status:\s+Unknown\n\s+Type:\s+OverQuota`),
			MatchRegexp(`Reason:\s+InvalidSpec\n\s+Status:\s+Unknown\n\s+Type:\s+Conflict`),
		))
		for _, previous := range []string{"Hard:", "Used:", "Usage Table:", "Pending Prune:", "Effective Policy:", "Containers:",
			"perContainer.checkpoints", "total.storage", "2/1", "10Mi", "cache-0"} {
			Expect(status).NotTo(ContainSubstring(previous), "status of the quota that no longer parses:\n%s", status)
		}

		By("kubectl checkpoint-quota status: why it is not ready, and nothing else")
		// Cluster quotas of other specs print too, each block after a blank line.
		printed := runPlugin(plugin, "status", "-n", ns)
		_, block, found := strings.Cut(printed, "CheckpointQuota "+ns+"/team (DryRun)\n")
		Expect(found).To(BeTrue(), printed)
		block, _, _ = strings.Cut(block, "\n\n")
		Expect(strings.TrimSuffix(block, "\n")).To(Equal(`  not ready: spec.maxAge: time: unknown unit "d" in duration "7d"; fix the field so that the quota can be enforced`))

		By("fixing the spec brings the usage back")
		_, stderr, err = env.Kubectl(strings.Replace(quota, "%s", "168h", 1), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), stderr)
		Eventually(get, 30*time.Second, time.Second).Should(MatchRegexp(`(?m)^team\s+2/1\s+2Mi/10Mi\s+DryRun\s+True\s+`))
	})
})

// withoutValidation runs store while the validating webhooks skip objects labelled
// pastAdmission (both the old and the new object must carry it), then puts the webhooks
// back as they were. The apiserver reads webhook configurations from a cache, so store is
// retried until the change has reached it.
func withoutValidation(ctx context.Context, store func() error) {
	GinkgoHelper()
	var list admissionv1.ValidatingWebhookConfigurationList
	Expect(env.Client.List(ctx, &list)).To(Succeed())
	originals := make([]*admissionv1.ValidatingWebhookConfiguration, 0, len(list.Items))
	restore := func(ctx context.Context) {
		for _, original := range originals {
			Eventually(func(g Gomega) {
				current := &admissionv1.ValidatingWebhookConfiguration{}
				g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(original), current)).To(Succeed())
				current.Webhooks = original.Webhooks
				g.Expect(env.Client.Update(ctx, current)).To(Succeed())
			}).Should(Succeed())
		}
	}
	// Should the spec fail half way, the webhooks are put back all the same.
	DeferCleanup(restore)
	skip := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: pastAdmission, Operator: metav1.LabelSelectorOpDoesNotExist}}}
	for i := range list.Items {
		vwc := &list.Items[i]
		originals = append(originals, vwc.DeepCopy())
		for j := range vwc.Webhooks {
			vwc.Webhooks[j].ObjectSelector = skip
		}
		Expect(env.Client.Update(ctx, vwc)).To(Succeed())
	}
	Eventually(store, 30*time.Second, 500*time.Millisecond).Should(Succeed())
	restore(ctx)
}

// runPlugin runs the kubectl plugin as kubectl would and returns what it printed.
func runPlugin(plugin string, args ...string) string {
	GinkgoHelper()
	out, err := exec.Command(plugin, append([]string{"--kubeconfig", env.Kubeconfig}, args...)...).Output()
	Expect(err).NotTo(HaveOccurred())
	return string(out)
}
