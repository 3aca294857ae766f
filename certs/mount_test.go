package certs_test

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// With cert-manager, the manager reads the Secret cert-manager writes, mounted by the kubelet.
// No kubelet runs in the test bed, so projectSecret lays the files out as its Secret volume
// does; the manager itself runs without rotation, as config/default deploys it.
var _ = Describe("certificates mounted from cert-manager's Secret", func() {
	It("serves them and picks up a renewed pair without a restart", func(ctx SpecContext) {
		ns, err := env.CreateNamespace(ctx, "mounted")
		Expect(err).NotTo(HaveOccurred())
		issuer := &rotator.CertRotator{CAName: "test-ca", DNSName: "localhost", ExtKeyUsages: &[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		now := time.Now()
		ca, err := issuer.CreateCACert(now.Add(-time.Hour), now.Add(24*time.Hour))
		Expect(err).NotTo(HaveOccurred())
		issue := func() map[string][]byte {
			crt, key, err := issuer.CreateCertPEM(ca, time.Now().Add(-time.Hour), time.Now().Add(12*time.Hour))
			Expect(err).NotTo(HaveOccurred())
			return map[string][]byte{"tls.crt": crt, "tls.key": key, "ca.crt": ca.CertPEM}
		}

		certDir := filepath.Join(GinkgoT().TempDir(), "serving-certs")
		first := issue()
		projectSecret(certDir, first, 1)

		mgr, port := newManager(certDir, func(s webhook.Server) webhook.Server { return s })
		v, m := webhookConfigs(ns, port, ca.CertPEM)
		createWebhookConfigs(ctx, v, m)
		registerMissingHandlers(mgr.GetWebhookServer(), v, m)
		start(mgr)

		By("serving the mounted certificate to the kube-apiserver")
		Eventually(func() ([]byte, error) { return servedPEM(port, ca.CertPEM) }, time.Minute, 200*time.Millisecond).Should(Equal(first["tls.crt"]))
		Eventually(func(g Gomega) { expectWebhookAnswers(g, ns, v.Webhooks[quotaWebhook(v)].Name, "first") }, time.Minute, time.Second).Should(Succeed())

		By("serving the renewed certificate once the kubelet swaps the Secret's files")
		renewed := issue()
		projectSecret(certDir, renewed, 2)
		Eventually(func() ([]byte, error) { return servedPEM(port, ca.CertPEM) }, time.Minute, 500*time.Millisecond).Should(Equal(renewed["tls.crt"]))
		expectWebhookAnswers(Default, ns, v.Webhooks[quotaWebhook(v)].Name, "second")
	})
})

// projectSecret writes files into dir the way the kubelet updates a Secret volume: a new
// hidden timestamped directory, the ..data symlink swapped to it by rename, one symlink per key
// pointing through ..data, and the previous directory removed.
func projectSecret(dir string, files map[string][]byte, generation int) {
	Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
	previous, _ := os.Readlink(filepath.Join(dir, "..data"))
	tsDir := fmt.Sprintf("..%s.%d", time.Now().UTC().Format("2006_01_02_15_04_05"), generation)
	Expect(os.Mkdir(filepath.Join(dir, tsDir), 0o755)).To(Succeed())
	for name, content := range files {
		Expect(os.WriteFile(filepath.Join(dir, tsDir, name), content, 0o600)).To(Succeed())
	}
	Expect(os.Symlink(tsDir, filepath.Join(dir, "..data_tmp"))).To(Succeed())
	Expect(os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data"))).To(Succeed())
	for name := range files {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			Expect(os.Symlink(filepath.Join("..data", name), link)).To(Succeed())
		}
	}
	if previous != "" {
		Expect(os.RemoveAll(filepath.Join(dir, previous))).To(Succeed())
	}
}

// servedPEM is the served leaf certificate, PEM-encoded as in tls.crt.
func servedPEM(port int, caPEM []byte) ([]byte, error) {
	crt, err := servedCertificate(port, caPEM)
	if err != nil {
		return nil, err
	}
	return pemCertificate(crt.Raw), nil
}
