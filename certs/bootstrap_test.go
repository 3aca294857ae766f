package certs_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/checkpoint-quota/checkpoint-quota/certs"
)

// Two replicas start together on an empty Secret: the second reads the Secret before the
// first one's write lands, so its own write conflicts.
var _ = Describe("the certificate start-up of two replicas", func() {
	It("lets the replica that lost the race use the winner's certificate, with one info line and no error", func(ctx SpecContext) {
		ns, err := env.CreateNamespace(ctx, "bootstrap")
		Expect(err).NotTo(HaveOccurred())
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "webhook-server-cert"}}
		Expect(env.Client.Create(ctx, secret)).To(Succeed())
		v, m := webhookConfigs(ns, freePort(), nil)
		createWebhookConfigs(ctx, v, m)
		rotatorFor := func() *rotator.CertRotator {
			return &rotator.CertRotator{
				SecretKey: client.ObjectKeyFromObject(secret), CAName: "checkpoint-quota-ca", CAOrganization: "checkpoint-quota",
				DNSName: "webhook-service." + ns + ".svc", FieldOwner: "checkpoint-quota-cert-rotation",
				Webhooks:       []rotator.WebhookInfo{{Name: v.Name, Type: rotator.Validating}, {Name: m.Name, Type: rotator.Mutating}},
				CaCertDuration: 10 * 365 * 24 * time.Hour, ServerCertDuration: 365 * 24 * time.Hour, LookaheadInterval: 90 * 24 * time.Hour,
				ExtKeyUsages: &[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}
		}

		By("the second replica reading the empty Secret, then the first one writing it")
		stale := &staleOnce{Reader: env.Client, ctx: ctx}
		Expect(stale.snapshot(secret)).To(Succeed())
		first, second := &logLines{}, &logLines{}
		Expect(certs.Bootstrap(ctx, env.Client, env.Client, rotatorFor(), first.logger())).To(Succeed())
		Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(secret), secret)).To(Succeed())
		ca := secret.Data["ca.crt"]
		Expect(ca).NotTo(BeEmpty())
		Expect(caBundles(Default, ctx, v, m)).To(HaveEach(Equal(ca)))
		version := secret.ResourceVersion

		By("the second replica writing what it issued")
		Expect(certs.Bootstrap(ctx, stale, env.Client, rotatorFor(), second.logger())).To(Succeed())
		Expect(stale.served).To(BeTrue(), "the second replica did not read the stale Secret")
		Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(secret), secret)).To(Succeed())
		Expect(secret.ResourceVersion).To(Equal(version), "the second replica overwrote the first one's certificate")
		Expect(caBundles(Default, ctx, v, m)).To(HaveEach(Equal(ca)))

		Expect(first.messages()).To(Equal([]string{"Wrote the webhook certificate"}))
		Expect(second.messages()).To(Equal([]string{"Another replica wrote the webhook certificate at the same time; using its"}))
		Expect(append(first.errors(), second.errors()...)).To(BeEmpty())
	})
})

// staleOnce answers the first Get of the Secret it took a snapshot of with that snapshot, as
// a replica that read it just before another replica's write; everything else it reads anew.
type staleOnce struct {
	client.Reader
	ctx    context.Context
	old    *corev1.Secret
	served bool
}

func (s *staleOnce) snapshot(secret *corev1.Secret) error {
	s.old = &corev1.Secret{}
	return s.Reader.Get(s.ctx, client.ObjectKeyFromObject(secret), s.old)
}

func (s *staleOnce) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if sec, ok := obj.(*corev1.Secret); ok && !s.served && key == client.ObjectKeyFromObject(s.old) {
		s.served = true
		s.old.DeepCopyInto(sec)
		return nil
	}
	return s.Reader.Get(ctx, key, obj, opts...)
}

// logLines records what a logger was given.
type logLines struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (l *logLines) logger() logr.Logger {
	return funcr.NewJSON(func(obj string) {
		var m map[string]any
		_ = json.Unmarshal([]byte(obj), &m)
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, m)
	}, funcr.Options{})
}

func (l *logLines) messages() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range l.lines {
		out = append(out, m["msg"].(string))
	}
	return out
}

// errors are the lines logged with Error.
func (l *logLines) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range l.lines {
		if _, ok := m["error"]; ok {
			out = append(out, strings.TrimSpace(m["msg"].(string)))
		}
	}
	return out
}
