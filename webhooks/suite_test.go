package webhooks_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
	"github.com/checkpoint-quota/checkpoint-quota/webhooks"
)

var (
	env    *testenv.Env
	server *testenv.WebhookServer
)

func TestWebhooks(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Admission webhooks suite")
}

var _ = BeforeSuite(func() {
	var err error
	env, err = testenv.Start(testenv.Options{Webhooks: true})
	Expect(err).NotTo(HaveOccurred())
	server, err = env.StartWebhookServer(func(mgr ctrl.Manager) error { return webhooks.SetupWithManager(mgr, webhooks.Options{}) })
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if server != nil {
		Expect(server.Stop()).To(Succeed())
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// restartServer starts the webhook server again after a spec stopped it.
func restartServer() {
	var err error
	server, err = env.StartWebhookServer(func(mgr ctrl.Manager) error { return webhooks.SetupWithManager(mgr, webhooks.Options{}) })
	Expect(err).NotTo(HaveOccurred())
}

// newNamespace gives each spec its own namespace.
func newNamespace() string {
	ns, err := env.CreateNamespace(context.Background(), "admission")
	Expect(err).NotTo(HaveOccurred())
	return ns
}

// apply runs `kubectl apply -f -` with a manifest and returns stdout, stderr and the error.
func apply(manifest string) (string, string, error) {
	return env.Kubectl(manifest, "apply", "-f", "-")
}

// quotaYAML is a CheckpointQuota manifest with the given spec, indented under "spec:".
func quotaYAML(name, ns, spec string) string {
	return fmt.Sprintf("apiVersion: checkpointquota.dev/v1alpha1\nkind: CheckpointQuota\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n%s", name, ns, indent(spec))
}

// clusterQuotaYAML is a ClusterCheckpointQuota manifest.
func clusterQuotaYAML(name, spec string) string {
	return fmt.Sprintf("apiVersion: checkpointquota.dev/v1alpha1\nkind: ClusterCheckpointQuota\nmetadata:\n  name: %s\nspec:\n%s", name, indent(spec))
}

func indent(s string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n") + "\n"
}
