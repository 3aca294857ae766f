package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// What config/default names, after its namePrefix.
const (
	servingSecret  = "webhook-server-cert"
	servingCert    = "checkpoint-quota-serving-cert"
	webhookService = "checkpoint-quota-webhook-service"
	certManagerNS  = "cert-manager"
)

// certManager is what hack/node/cert-manager.sh found in its cache: the three images and the
// chart rendered for them. The lane is skipped, saying why, when they do not exist (CI has
// no cert-manager source to build them from).
func certManager() (images, manifest string) {
	GinkgoHelper()
	out, stderr, err := run("", filepath.Join(root, "hack", "node", "cert-manager.sh"), "env")
	Expect(err).NotTo(HaveOccurred(), "hack/node/cert-manager.sh env: %s", stderr)
	env := map[string]string{}
	for line := range strings.Lines(out) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			env[k] = v
		}
	}
	if why := env["CERT_MANAGER_SKIPPED"]; why != "" {
		Skip("the cert-manager lane is skipped: " + why)
	}
	return env["CERT_MANAGER_IMAGES"], env["CERT_MANAGER_MANIFEST"]
}

// installCertManager imports cert-manager's images into the node's runtime and applies its
// chart as rendered, then waits until its webhook admits a resource of its own.
func installCertManager(images, manifest string) {
	GinkgoHelper()
	tarballs, err := filepath.Glob(filepath.Join(images, "*.tar"))
	Expect(err).NotTo(HaveOccurred())
	Expect(tarballs).To(HaveLen(3), "cert-manager's controller, cainjector and webhook in %s", images)
	_, stderr, err := run("", filepath.Join(root, "hack", "node", "node.sh"), append([]string{"import"}, tarballs...)...)
	Expect(err).NotTo(HaveOccurred(), "node.sh import: %s", stderr)
	mustKubectl("", "create", "namespace", certManagerNS)
	mustKubectl("", "apply", "--server-side", "-f", manifest)
	for _, d := range []string{"cert-manager", "cert-manager-cainjector", "cert-manager-webhook"} {
		mustKubectl("", "rollout", "status", "-n", certManagerNS, "deployment/"+d, "--timeout=5m")
	}
}

func uninstallCertManager(manifest string) {
	_, _, _ = kubectl("", "delete", "--ignore-not-found", "--wait", "--timeout=3m", "-f", manifest)
	_, _, _ = kubectl("", "delete", "namespace", certManagerNS, "--ignore-not-found", "--wait", "--timeout=3m")
}

// applyOverlay applies config/default as rendered; its Issuers and Certificates go through
// cert-manager's webhook, which may take a moment to serve after its rollout.
func applyOverlay(manifests string) {
	GinkgoHelper()
	Eventually(func() error {
		_, stderr, err := kubectl(manifests, "apply", "--server-side", "-f", "-")
		if err != nil {
			return fmt.Errorf("%w: %s", err, stderr)
		}
		return nil
	}, 2*time.Minute, 2*time.Second).Should(Succeed())
	waitForOperator()
}

// secretCert is the serving certificate and the CA cert-manager wrote into the manager's Secret.
func secretCert(ctx context.Context, g Gomega) (*x509.Certificate, *x509.CertPool, []byte) {
	var s corev1.Secret
	g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: systemNS, Name: servingSecret}, &s)).To(Succeed())
	block, _ := pem.Decode(s.Data[corev1.TLSCertKey])
	g.Expect(block).NotTo(BeNil(), "no PEM in %s's tls.crt", servingSecret)
	cert, err := x509.ParseCertificate(block.Bytes)
	g.Expect(err).NotTo(HaveOccurred())
	pool := x509.NewCertPool()
	g.Expect(pool.AppendCertsFromPEM(s.Data["ca.crt"])).To(BeTrue(), "no CA in %s's ca.crt", servingSecret)
	return cert, pool, s.Data["ca.crt"]
}

// servedSerials connects to every address behind the webhook Service, as the apiserver does
// (its endpoints: the node has no kube-proxy, the apiserver routes to them itself), verifies
// the chain against the Secret's CA for the Service's name, and returns each server's serial.
func servedSerials(ctx context.Context, g Gomega, roots *x509.CertPool) map[string]*big.Int {
	var slices discoveryv1.EndpointSliceList
	g.Expect(k8s.List(ctx, &slices, client.InNamespace(systemNS),
		client.MatchingLabels{discoveryv1.LabelServiceName: webhookService})).To(Succeed())
	serials := map[string]*big.Int{}
	for _, s := range slices.Items {
		for _, p := range s.Ports {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready != nil && !*e.Conditions.Ready {
					continue
				}
				for _, ip := range e.Addresses {
					addr := net.JoinHostPort(ip, strconv.Itoa(int(*p.Port)))
					conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
						RootCAs: roots, ServerName: webhookService + "." + systemNS + ".svc", MinVersion: tls.VersionTLS12,
					})
					g.Expect(err).NotTo(HaveOccurred(), "TLS to the webhook at %s", addr)
					serials[addr] = conn.ConnectionState().PeerCertificates[0].SerialNumber
					_ = conn.Close()
				}
			}
		}
	}
	g.Expect(serials).NotTo(BeEmpty(), "no ready endpoint behind %s", webhookService)
	return serials
}

// managerPods are the manager's pods by name, with their UID and restart count.
func managerPods(ctx context.Context) map[string]string {
	GinkgoHelper()
	var list corev1.PodList
	Expect(k8s.List(ctx, &list, client.InNamespace(systemNS),
		client.MatchingLabels{"app.kubernetes.io/component": "manager"})).To(Succeed())
	pods := map[string]string{}
	for _, p := range list.Items {
		restarts := int32(0)
		for _, c := range p.Status.ContainerStatuses {
			restarts += c.RestartCount
		}
		pods[p.Name] = fmt.Sprintf("uid %s, %d restarts", p.UID, restarts)
	}
	return pods
}

var _ = Describe("Installed with kustomize, config/default, with cert-manager", Ordered, func() {
	const ns = "cshop"
	var manifests, cmManifest string
	var pods []*corev1.Pod

	BeforeAll(func(ctx context.Context) {
		images, manifest := certManager()
		cmManifest = manifest
		start := time.Now()
		installCertManager(images, manifest)
		DeferCleanup(func() { uninstallCertManager(cmManifest) })
		AddReportEntry("cert-manager imported and rolled out", time.Since(start).Round(time.Second).String())
		manifests = rendered("default")
		start = time.Now()
		applyOverlay(manifests)
		AddReportEntry("config/default applied until the manager is available", time.Since(start).Round(time.Second).String())
		DeferCleanup(func() {
			_, _, _ = kubectl(manifests, "delete", "--ignore-not-found", "--wait", "--timeout=3m", "-f", "-")
		})
		createNamespace(ctx, ns)
		pods = []*corev1.Pod{workloadPod(ns, "api-0", 8), workloadPod(ns, "api-1", 8)}
		startPods(ctx, pods...)
	}, NodeTimeout(15*time.Minute))

	It("serves its webhooks from the Secret cert-manager wrote, through its Service", func(ctx context.Context) {
		expectWebhookRefusal(ns)
		Eventually(func(g Gomega) {
			cert, roots, ca := secretCert(ctx, g)
			served := servedSerials(ctx, g, roots)
			g.Expect(served).To(HaveLen(2), "config/manager runs two replicas, both behind the Service")
			for addr, serial := range served {
				g.Expect(serial).To(Equal(cert.SerialNumber), "%s serves the Secret's certificate", addr)
			}
			// cert-manager's cainjector put the same CA into both webhook configurations.
			ours := client.MatchingLabels{"app.kubernetes.io/part-of": "checkpoint-quota"}
			var v admissionv1.ValidatingWebhookConfigurationList
			g.Expect(k8s.List(ctx, &v, ours)).To(Succeed())
			var m admissionv1.MutatingWebhookConfigurationList
			g.Expect(k8s.List(ctx, &m, ours)).To(Succeed())
			g.Expect(v.Items).NotTo(BeEmpty())
			g.Expect(m.Items).NotTo(BeEmpty())
			for _, c := range v.Items {
				for _, w := range c.Webhooks {
					g.Expect(string(w.ClientConfig.CABundle)).To(Equal(string(ca)), "caBundle of %s/%s", c.Name, w.Name)
				}
			}
			for _, c := range m.Items {
				for _, w := range c.Webhooks {
					g.Expect(string(w.ClientConfig.CABundle)).To(Equal(string(ca)), "caBundle of %s/%s", c.Name, w.Name)
				}
			}
		}, 3*time.Minute).Should(Succeed())
	})

	It("picks up a cert-manager renewal without a restart", func(ctx context.Context) {
		before := managerPods(ctx)
		var old *big.Int
		Eventually(func(g Gomega) {
			cert, roots, _ := secretCert(ctx, g)
			old = cert.SerialNumber
			for _, serial := range servedSerials(ctx, g, roots) {
				g.Expect(serial).To(Equal(old))
			}
		}).Should(Succeed())
		// What `cmctl renew` does: the Certificate's Issuing condition set to True.
		start := time.Now()
		mustKubectl("", "patch", "certificate", servingCert, "-n", systemNS, "--subresource=status", "--type=json", "-p",
			`[{"op":"add","path":"/status/conditions/-","value":{"type":"Issuing","status":"True",`+
				`"reason":"ManuallyTriggered","message":"Certificate re-issuance manually triggered by the node suite"}}]`)
		var renewed *big.Int
		Eventually(func(g Gomega) {
			cert, _, _ := secretCert(ctx, g)
			g.Expect(cert.SerialNumber).NotTo(Equal(old), "cert-manager reissued the Secret")
			renewed = cert.SerialNumber
		}, 2*time.Minute).Should(Succeed())
		reissued := time.Since(start)
		// The kubelet updates the mounted Secret on its next sync of the pod, and the manager
		// reloads the files it watches.
		Eventually(func(g Gomega) {
			_, roots, _ := secretCert(ctx, g)
			for addr, serial := range servedSerials(ctx, g, roots) {
				g.Expect(serial).To(Equal(renewed), "%s serves the renewed certificate", addr)
			}
		}, 4*time.Minute, time.Second).Should(Succeed())
		AddReportEntry("renewal: trigger -> Secret reissued, -> served by every replica",
			fmt.Sprintf("%s, %s", reissued.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond)))
		expectWebhookRefusal(ns)
		Expect(managerPods(ctx)).To(Equal(before), "the same manager pods, none restarted")
	}, NodeTimeout(8*time.Minute))

	It("publishes every archive and prunes a namespace to its total", func(ctx context.Context) {
		expectPrunedToTotal(ctx, ns, pods, 2, 2)
	}, NodeTimeout(5*time.Minute))

	It("keeps every archive through kubectl delete -k config/default, and a reinstall publishes them again", func(ctx context.Context) {
		before := archives()
		Expect(before).NotTo(BeEmpty())
		mustKubectl(manifests, "delete", "--ignore-not-found", "--wait", "--timeout=3m", "-f", "-")
		Eventually(func() string {
			out, _, _ := kubectl("", "get", "pods", "-n", systemNS, "-o", "name")
			return out
		}, 2*time.Minute).Should(BeEmpty())
		// The overlay's CRDs went with it, and so every Checkpoint; no archive did.
		_, _, err := kubectl("", "get", "crd", "checkpoints.checkpointquota.dev")
		Expect(err).To(HaveOccurred(), "kubectl delete -k config/default removed the CRDs")
		Expect(archives()).To(Equal(before), "the overlay's deletion left every archive byte-identical")

		applyOverlay(manifests)
		Eventually(func(g Gomega) {
			byFile := checkpointsByFile(ctx, g, "")
			for file := range before {
				g.Expect(byFile).To(HaveKey(file))
			}
		}, 3*time.Minute).Should(Succeed())
		Expect(archives()).To(Equal(before))
		expectWebhookRefusal(ns)
	}, NodeTimeout(12*time.Minute))
})
