package webhooks_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	certutil "k8s.io/client-go/util/cert"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

var _ = Describe("the webhook server", Serial, func() {
	It("fails closed when it is down: creation is refused, not admitted unchecked", func() {
		Expect(server.Stop()).To(Succeed())
		DeferCleanup(restartServer)
		ns := newNamespace()

		_, stderr, err := apply(quotaYAML("unchecked", ns, "limits:\n  total: {checkpoints: 5}"))
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring(`Internal error occurred: failed calling webhook "mcheckpointquota.checkpointquota.dev"`))
		Expect(stderr).To(ContainSubstring("connection refused"))
		err = env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "unchecked"}, &cqv1.CheckpointQuota{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the quota must not exist: %v", err)
	})

	It("reloads its certificate when the files in the certificate directory change", func() {
		ctx := context.Background()
		certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey(env.Webhook.LocalServingHost, nil, nil)
		Expect(err).NotTo(HaveOccurred())
		block, _ := pem.Decode(certPEM)
		Expect(block).NotTo(BeNil())
		Expect(servedCertificate()).NotTo(Equal(block.Bytes), "the new certificate must differ from the old")

		// Write each file next to its place and rename it there, as a Secret volume update does.
		dir := env.Webhook.LocalServingCertDir
		for name, data := range map[string][]byte{"tls.key": keyPEM, "tls.crt": certPEM} {
			tmp := filepath.Join(dir, "."+name+".new")
			Expect(os.WriteFile(tmp, data, 0o600)).To(Succeed())
			Expect(os.Rename(tmp, filepath.Join(dir, name))).To(Succeed())
		}
		Eventually(servedCertificate).WithTimeout(30 * time.Second).Should(Equal(block.Bytes))

		// Trust the new certificate (it carries its CA) and check that admission still works.
		setCABundle(ctx, certPEM)
		ns := newNamespace()
		Eventually(func() error {
			_, _, err := apply(quotaYAML("after-reload", ns, "limits:\n  total: {storage: 2048Mi}"))
			return err
		}).WithTimeout(30 * time.Second).Should(Succeed())
		var q cqv1.CheckpointQuota
		Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "after-reload"}, &q)).To(Succeed())
		Expect(q.Spec.Enforcement).To(Equal(cqv1.EnforcementEnforce), "the mutating webhook ran")
		Expect(*q.Spec.Limits.Total.Storage).To(Equal(cqv1.Size("2048Mi")), "the size is kept as written")
		_, stderr, err := apply(quotaYAML("bad", ns, "maxAge: 7d"))
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring(`write "168h"`), "the validating webhook ran")
	})
})

// servedCertificate is the DER of the certificate the webhook server presents now.
func servedCertificate() ([]byte, error) {
	conn, err := tls.Dial("tcp", env.WebhookAddress(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reads the certificate only
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	return bytes.Clone(conn.ConnectionState().PeerCertificates[0].Raw), nil
}

// setCABundle makes the apiserver trust caPEM for every webhook of the test bed.
func setCABundle(ctx context.Context, caPEM []byte) {
	var mutating admissionv1.MutatingWebhookConfigurationList
	Expect(env.Client.List(ctx, &mutating)).To(Succeed())
	for i := range mutating.Items {
		c := &mutating.Items[i]
		for j := range c.Webhooks {
			c.Webhooks[j].ClientConfig.CABundle = caPEM
		}
		Expect(env.Client.Update(ctx, c)).To(Succeed())
	}
	var validating admissionv1.ValidatingWebhookConfigurationList
	Expect(env.Client.List(ctx, &validating)).To(Succeed())
	for i := range validating.Items {
		c := &validating.Items[i]
		for j := range c.Webhooks {
			c.Webhooks[j].ClientConfig.CABundle = caPEM
		}
		Expect(env.Client.Update(ctx, c)).To(Succeed())
	}
}
