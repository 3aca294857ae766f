package deploy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The manager binary as config/no-cert-manager runs it, against the test bed.
var _ = Describe("the manager with --cert-rotation", func() {
	It("becomes ready only once its certificate is written and its CA injected", func(ctx SpecContext) {
		bin, err := gexec.Build("github.com/checkpoint-quota/checkpoint-quota/cmd/manager")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(gexec.CleanupBuildArtifacts)

		ns, err := env.CreateNamespace(ctx, "rotation")
		Expect(err).NotTo(HaveOccurred())
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "webhook-server-cert"}}
		Expect(env.Client.Create(ctx, secret)).To(Succeed())
		webhookPort, probePort := freePort(), freePort()
		v, m := localWebhooks(ns, webhookPort)
		Expect(env.Client.Create(ctx, v)).To(Succeed())
		Expect(env.Client.Create(ctx, m)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) {
			Expect(client.IgnoreNotFound(env.Client.Delete(ctx, v))).To(Succeed())
			Expect(client.IgnoreNotFound(env.Client.Delete(ctx, m))).To(Succeed())
		})

		certDir := filepath.Join(GinkgoT().TempDir(), "serving-certs")
		cmd := exec.Command(bin,
			"--cert-rotation=true",
			"--cert-rotation-secret="+secret.Name,
			"--cert-rotation-service=webhook-service",
			"--cert-rotation-validating-webhook="+v.Name,
			"--cert-rotation-mutating-webhook="+m.Name,
			"--webhook-cert-dir="+certDir,
			"--webhook-port="+strconv.Itoa(webhookPort),
			"--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(probePort),
			"--metrics-bind-address=0",
			"--enable-controllers=false",
		)
		// The namespace comes from the downward API in the Deployment.
		cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig, "POD_NAMESPACE="+ns)
		session, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() {
			session.Signal(syscall.SIGTERM)
			Eventually(session, 30*time.Second).Should(gexec.Exit())
		})

		expectReady(probePort)

		By("having, by the time it is ready, the CA in both configurations and the certificate on disk")
		Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(secret), secret)).To(Succeed())
		ca := secret.Data["ca.crt"]
		Expect(ca).NotTo(BeEmpty())
		Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(v), v)).To(Succeed())
		Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(m), m)).To(Succeed())
		Expect(v.Webhooks[0].ClientConfig.CABundle).To(Equal(ca))
		Expect(m.Webhooks[0].ClientConfig.CABundle).To(Equal(ca))
		Expect(os.ReadFile(filepath.Join(certDir, "tls.crt"))).To(Equal(secret.Data["tls.crt"]))

		By("serving a certificate for the Service's DNS name, signed by that CA")
		pool := x509.NewCertPool()
		Expect(pool.AppendCertsFromPEM(ca)).To(BeTrue())
		dialer := &net.Dialer{Timeout: 5 * time.Second}
		conn, err := tls.DialWithDialer(dialer, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(webhookPort)),
			&tls.Config{RootCAs: pool, ServerName: "webhook-service." + ns + ".svc", MinVersion: tls.VersionTLS12})
		Expect(err).NotTo(HaveOccurred())
		Expect(conn.Close()).To(Succeed())
		Consistently(session, time.Second).ShouldNot(gexec.Exit())
	})
})

// localWebhooks are a validating and a mutating configuration, named for the spec, limited to
// its namespace, calling a local port; only their caBundle matters here.
func localWebhooks(ns string, port int) (*admissionregv1.ValidatingWebhookConfiguration, *admissionregv1.MutatingWebhookConfiguration) {
	url := fmt.Sprintf("https://localhost:%d/validate", port)
	none := admissionregv1.SideEffectClassNone
	scope := &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}
	rules := []admissionregv1.RuleWithOperations{{
		Operations: []admissionregv1.OperationType{admissionregv1.Create},
		Rule:       admissionregv1.Rule{APIGroups: []string{"checkpointquota.dev"}, APIVersions: []string{"v1alpha1"}, Resources: []string{"checkpointquotas"}},
	}}
	v := &admissionregv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-validating"},
		Webhooks: []admissionregv1.ValidatingWebhook{{
			Name: "v.checkpointquota.dev", ClientConfig: admissionregv1.WebhookClientConfig{URL: &url},
			Rules: rules, SideEffects: &none, AdmissionReviewVersions: []string{"v1"}, NamespaceSelector: scope,
		}},
	}
	m := &admissionregv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-mutating"},
		Webhooks: []admissionregv1.MutatingWebhook{{
			Name: "m.checkpointquota.dev", ClientConfig: admissionregv1.WebhookClientConfig{URL: &url},
			Rules: rules, SideEffects: &none, AdmissionReviewVersions: []string{"v1"}, NamespaceSelector: scope,
		}},
	}
	return v, m
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

var _ = Describe("the manager with --cert-rotation and no Secret", func() {
	It("stops with an error naming the Secret", func(ctx SpecContext) {
		bin, err := gexec.Build("github.com/checkpoint-quota/checkpoint-quota/cmd/manager")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(gexec.CleanupBuildArtifacts)
		ns, err := env.CreateNamespace(ctx, "nosecret")
		Expect(err).NotTo(HaveOccurred())

		cmd := exec.Command(bin, "--cert-rotation=true", "--cert-rotation-secret=missing-cert",
			"--webhook-cert-dir="+GinkgoT().TempDir(), "--webhook-port="+strconv.Itoa(freePort()),
			"--health-probe-bind-address=0", "--metrics-bind-address=0", "--enable-controllers=false")
		cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig, "POD_NAMESPACE="+ns)
		session, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { session.Kill() })
		Eventually(session, 30*time.Second).Should(gexec.Exit())
		Expect(session.ExitCode()).NotTo(Equal(0))
		Expect(string(session.Err.Contents())).To(And(
			ContainSubstring("Secret "+ns+"/missing-cert not found"),
			ContainSubstring("create secret generic missing-cert")))
	})
})

// expectReady waits, as a readiness probe would, until the manager whose health probes listen
// on port answers /readyz with 200.
func expectReady(port int) {
	GinkgoHelper()
	readyz := fmt.Sprintf("http://127.0.0.1:%d/readyz", port)
	Eventually(func() (int, error) {
		resp, err := http.Get(readyz)
		if err != nil {
			return 0, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}, time.Minute, 100*time.Millisecond).Should(Equal(http.StatusOK))
}
