package certs_test

import (
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/checkpoint-quota/checkpoint-quota/certs"
)

var _ = Describe("built-in certificate rotation", func() {
	It("issues the certificate, injects its CA, serves admission, and survives a new CA", func(ctx SpecContext) {
		ns, err := env.CreateNamespace(ctx, "rotation")
		Expect(err).NotTo(HaveOccurred())
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "webhook-server-cert"}}
		Expect(env.Client.Create(ctx, secret)).To(Succeed())

		certDir := filepath.Join(GinkgoT().TempDir(), "serving-certs")
		ready := make(chan struct{})
		mgr, port := newManager(certDir, func(s webhook.Server) webhook.Server { return certs.WaitForReady(s, ready) })
		v, m := webhookConfigs(ns, port, nil)
		createWebhookConfigs(ctx, v, m)
		Expect(certs.Setup(ctx, mgr, certs.Options{
			Namespace:             ns,
			SecretName:            secret.Name,
			ServiceName:           "webhook-service",
			ValidatingWebhookName: v.Name,
			MutatingWebhookName:   m.Name,
			CertDir:               certDir,
			ExtraDNSNames:         []string{"localhost"},
		}, ready)).To(Succeed())
		registerMissingHandlers(mgr.GetWebhookServer(), v, m)
		started := mgr.GetWebhookServer().StartedChecker()
		start(mgr)

		By("becoming ready only once the CA is in both webhook configurations")
		Eventually(func() error { return started(nil) }, time.Minute, 200*time.Millisecond).Should(Succeed())
		Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(secret), secret)).To(Succeed())
		ca := secret.Data["ca.crt"]
		Expect(ca).NotTo(BeEmpty())
		Expect(caBundles(Default, ctx, v, m)).To(HaveEach(Equal(ca)))

		By("writing the serving certificate from the Secret into the certificate directory")
		Expect(os.ReadFile(filepath.Join(certDir, "tls.crt"))).To(Equal(secret.Data["tls.crt"]))
		Expect(os.ReadFile(filepath.Join(certDir, "tls.key"))).To(Equal(secret.Data["tls.key"]))
		served, err := servedCertificate(port, ca)
		Expect(err).NotTo(HaveOccurred())
		Expect(served.DNSNames).To(ContainElements("webhook-service."+ns+".svc", "localhost"))

		By("letting the kube-apiserver call the webhook over TLS")
		Eventually(func(g Gomega) { expectWebhookAnswers(g, ns, v.Webhooks[quotaWebhook(v)].Name, "first") }, time.Minute, time.Second).Should(Succeed())

		By("restoring caBundle when someone overwrites it")
		Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(v), v)).To(Succeed())
		v.Webhooks[quotaWebhook(v)].ClientConfig.CABundle = []byte("not a CA")
		Expect(env.Client.Update(ctx, v)).To(Succeed())
		Eventually(func(g Gomega) [][]byte { return caBundles(g, ctx, v, m) }, time.Minute, 200*time.Millisecond).Should(HaveEach(Equal(ca)))

		By("replacing CA, certificate and files when the Secret loses them")
		secret.Data = nil
		Expect(env.Client.Update(ctx, secret)).To(Succeed())
		var newCA []byte
		Eventually(func(g Gomega) {
			g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(secret), secret)).To(Succeed())
			newCA = secret.Data["ca.crt"]
			g.Expect(newCA).NotTo(BeEmpty())
			g.Expect(newCA).NotTo(Equal(ca))
			g.Expect(caBundles(g, ctx, v, m)).To(HaveEach(Equal(newCA)))
			g.Expect(os.ReadFile(filepath.Join(certDir, "tls.crt"))).To(Equal(secret.Data["tls.crt"]))
		}, time.Minute, 200*time.Millisecond).Should(Succeed())

		By("serving the new certificate from the same process, and admission keeps working")
		Eventually(func() error { _, err := servedCertificate(port, newCA); return err }, time.Minute, time.Second).Should(Succeed())
		Eventually(func(g Gomega) { expectWebhookAnswers(g, ns, v.Webhooks[quotaWebhook(v)].Name, "second") }, time.Minute, time.Second).Should(Succeed())
		Expect(started(nil)).To(Succeed())
	})
})

// caBundles are the caBundle of every webhook of both configurations, as the apiserver has them.
func caBundles(g Gomega, ctx SpecContext, v *admissionregv1.ValidatingWebhookConfiguration, m *admissionregv1.MutatingWebhookConfiguration) [][]byte {
	var out [][]byte
	gotV := &admissionregv1.ValidatingWebhookConfiguration{}
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(v), gotV)).To(Succeed())
	for _, w := range gotV.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	gotM := &admissionregv1.MutatingWebhookConfiguration{}
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(m), gotM)).To(Succeed())
	for _, w := range gotM.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	return out
}
