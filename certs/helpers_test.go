package certs_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// badSizeMessage is what the test-only validator answers; see registerMissingHandlers.
const badSizeMessage = `spec.maxCheckpointSize: Invalid value: write sizes as quantities, such as "2Gi"`

// webhookConfigs reads the webhook configurations of config/webhook, as the kube-apiserver
// will see them, but named for this spec, pointed at a local server (the test bed has no
// Service network) and limited to the spec's namespace so that fail-closed webhooks of one
// spec never block another.
func webhookConfigs(ns string, port int, caBundle []byte) (*admissionregv1.ValidatingWebhookConfiguration, *admissionregv1.MutatingWebhookConfiguration) {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "webhook", "manifests.yaml"))
	Expect(err).NotTo(HaveOccurred())
	var v *admissionregv1.ValidatingWebhookConfiguration
	var m *admissionregv1.MutatingWebhookConfiguration
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var meta metav1.TypeMeta
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			break
		}
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		Expect(json.Unmarshal(raw, &meta)).To(Succeed())
		switch meta.Kind {
		case "ValidatingWebhookConfiguration":
			v = &admissionregv1.ValidatingWebhookConfiguration{}
			Expect(json.Unmarshal(raw, v)).To(Succeed())
		case "MutatingWebhookConfiguration":
			m = &admissionregv1.MutatingWebhookConfiguration{}
			Expect(json.Unmarshal(raw, m)).To(Succeed())
		}
	}
	Expect(v).NotTo(BeNil(), "config/webhook/manifests.yaml has no ValidatingWebhookConfiguration")
	Expect(m).NotTo(BeNil(), "config/webhook/manifests.yaml has no MutatingWebhookConfiguration")
	scope := &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}
	point := func(cc *admissionregv1.WebhookClientConfig) {
		u := fmt.Sprintf("https://localhost:%d%s", port, *cc.Service.Path)
		cc.Service, cc.URL, cc.CABundle = nil, &u, caBundle
	}
	v.Name = ns + "-" + v.Name
	for i := range v.Webhooks {
		point(&v.Webhooks[i].ClientConfig)
		v.Webhooks[i].NamespaceSelector = scope
	}
	m.Name = ns + "-" + m.Name
	for i := range m.Webhooks {
		point(&m.Webhooks[i].ClientConfig)
		m.Webhooks[i].NamespaceSelector = scope
	}
	return v, m
}

// createWebhookConfigs creates both configurations and removes them when the spec ends.
func createWebhookConfigs(ctx context.Context, v *admissionregv1.ValidatingWebhookConfiguration, m *admissionregv1.MutatingWebhookConfiguration) {
	Expect(env.Client.Create(ctx, v)).To(Succeed())
	Expect(env.Client.Create(ctx, m)).To(Succeed())
	DeferCleanup(func(ctx SpecContext) {
		Expect(client.IgnoreNotFound(env.Client.Delete(ctx, v))).To(Succeed())
		Expect(client.IgnoreNotFound(env.Client.Delete(ctx, m))).To(Succeed())
	})
}

// registerMissingHandlers serves the configurations' paths that nothing serves yet: a
// test-only validator that refuses a malformed maxCheckpointSize, and a mutator that changes
// nothing. Once the webhooks package registers the real handlers, these stay unused.
func registerMissingHandlers(srv webhook.Server, v *admissionregv1.ValidatingWebhookConfiguration, m *admissionregv1.MutatingWebhookConfiguration) {
	served := func(path string) bool {
		if srv.WebhookMux() == nil { // nothing registered at all yet
			return false
		}
		_, pattern := srv.WebhookMux().Handler(httptest.NewRequest(http.MethodPost, path, nil))
		return pattern != ""
	}
	for _, w := range v.Webhooks {
		if path := pathOf(w.ClientConfig); !served(path) {
			srv.Register(path, &webhook.Admission{Handler: admission.HandlerFunc(validateSize)})
		}
	}
	for _, w := range m.Webhooks {
		if path := pathOf(w.ClientConfig); !served(path) {
			srv.Register(path, &webhook.Admission{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
				return admission.Allowed("")
			})})
		}
	}
}

func pathOf(cc admissionregv1.WebhookClientConfig) string {
	u, err := neturl.Parse(*cc.URL)
	Expect(err).NotTo(HaveOccurred())
	return u.Path
}

func validateSize(_ context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	var obj struct {
		Spec struct {
			MaxCheckpointSize *json.RawMessage `json:"maxCheckpointSize"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(req.Object.Raw, &obj); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if obj.Spec.MaxCheckpointSize == nil {
		return admission.Allowed("")
	}
	var s string
	if json.Unmarshal(*obj.Spec.MaxCheckpointSize, &s) == nil {
		if _, err := resource.ParseQuantity(s); err != nil {
			return admission.Denied(badSizeMessage)
		}
	}
	return admission.Allowed("")
}

// newManager builds a manager on the test bed whose webhook server listens on a free local
// port and reads its certificate from certDir.
func newManager(certDir string, wrap func(webhook.Server) webhook.Server) (ctrl.Manager, int) {
	port := freePort()
	srv := wrap(webhook.NewServer(webhook.Options{Host: "127.0.0.1", Port: port, CertDir: certDir}))
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 testenv.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		WebhookServer:          srv,
	})
	Expect(err).NotTo(HaveOccurred())
	return mgr, port
}

// start runs mgr until the spec ends.
func start(mgr ctrl.Manager) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		defer GinkgoRecover()
		done <- mgr.Start(ctx)
	}()
	DeferCleanup(func() {
		cancel()
		Eventually(done, 30*time.Second).Should(Receive(BeNil()))
	})
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// servedCertificate is the leaf certificate the webhook server presents, verified against ca.
func servedCertificate(port int, caPEM []byte) (*x509.Certificate, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no CA certificate in %q", caPEM)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		&tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// quota is a CheckpointQuota manifest as a user would write it.
func quota(ns, name, maxSize string) string {
	return fmt.Sprintf(`apiVersion: checkpointquota.dev/v1alpha1
kind: CheckpointQuota
metadata:
  name: %s
  namespace: %s
spec:
  maxCheckpointSize: %s
  limits:
    perContainer:
      checkpoints: 10
`, name, ns, maxSize)
}

// quotaWebhook is the index of the CheckpointQuota validating webhook in v: the one a
// malformed quota reaches.
func quotaWebhook(v *admissionregv1.ValidatingWebhookConfiguration) int {
	GinkgoHelper()
	for i, wh := range v.Webhooks {
		if strings.HasPrefix(wh.Name, "vcheckpointquota.") {
			return i
		}
	}
	Fail("no CheckpointQuota validating webhook in " + v.Name)
	return -1
}

// expectWebhookAnswers applies a malformed quota with kubectl and expects the webhook's own
// refusal (not a failure to call it), then a valid one that passes both webhooks.
func expectWebhookAnswers(g Gomega, ns, webhookName string, valid string) {
	_, stderr, err := env.Kubectl(quota(ns, "bad", "2GB"), "apply", "-f", "-")
	g.Expect(err).To(HaveOccurred())
	g.Expect(stderr).To(ContainSubstring(fmt.Sprintf("admission webhook %q denied the request", webhookName)))
	g.Expect(stderr).To(ContainSubstring("maxCheckpointSize"))
	out, stderr, err := env.Kubectl(quota(ns, valid, "2Gi"), "apply", "-f", "-")
	g.Expect(err).NotTo(HaveOccurred(), stderr)
	g.Expect(out).To(ContainSubstring("created"))
}

func pemCertificate(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
