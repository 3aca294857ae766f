package certs

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The Secret's keys, as the rotator writes them.
const (
	keyCACert  = "ca.crt"
	keyCAKey   = "ca.key"
	keyTLSCert = "tls.crt"
	keyTLSKey  = "tls.key"
)

// bootstrapAttempts bounds the writes of one start; each lost race ends with the winner's
// certificate read back, so two are enough unless something else keeps writing the Secret.
const bootstrapAttempts = 5

// bootstrap gives the Secret a valid CA and serving certificate and both webhook configurations
// that CA, before the manager starts. Replicas that start together race for these writes; the
// rotator, left to settle them, logs every lost race as an error (a conflict on the Secret, a
// Secret read before the winner's write as "not well-formed", a conflict on a webhook
// configuration). Here a lost race is expected: the replica reads the winner's certificate back
// and uses it, with one info line. The rotator then starts on objects that need nothing, and
// renews them later as before.
type bootstrap struct {
	reader client.Reader // uncached: the manager's caches have not started
	writer client.Writer
	cr     *rotator.CertRotator // AddRotator has filled in its defaults
	log    logr.Logger
	// raced is set once a lost race was logged.
	raced bool
}

func (b *bootstrap) run(ctx context.Context) error {
	ca, err := b.secret(ctx)
	if err != nil {
		return err
	}
	for _, hook := range b.cr.Webhooks {
		if err := b.inject(ctx, hook, ca); err != nil {
			return err
		}
	}
	return nil
}

// lostRace logs, once per replica, that another replica wrote first.
func (b *bootstrap) lostRace(what string) {
	if !b.raced {
		b.raced = true
		b.log.Info("Another replica wrote the webhook certificate at the same time; using its", "object", what)
	}
}

// secret makes the Secret hold a CA and a serving certificate that the rotator would keep as
// they are, and returns the CA certificate.
func (b *bootstrap) secret(ctx context.Context) ([]byte, error) {
	key := b.cr.SecretKey
	for range bootstrapAttempts {
		s := &corev1.Secret{}
		if err := b.reader.Get(ctx, key, s); err != nil {
			return nil, fmt.Errorf("reading Secret %s: %w", key, err)
		}
		d := s.Data
		lookahead := time.Now().Add(b.cr.LookaheadInterval)
		caValid, _ := rotator.ValidCert(d[keyCACert], d[keyCACert], d[keyCAKey], b.cr.CAName, nil, lookahead)
		if caValid {
			if ok, _ := rotator.ValidCert(d[keyCACert], d[keyTLSCert], d[keyTLSKey], b.cr.DNSName, b.cr.ExtKeyUsages, lookahead); ok {
				return d[keyCACert], nil
			}
		}
		if err := b.issue(s, caValid); err != nil {
			return nil, err
		}
		err := b.writer.Update(ctx, s, client.FieldOwner(b.cr.FieldOwner))
		switch {
		case err == nil:
			b.log.Info("Wrote the webhook certificate", "secret", key.String(), "newCA", !caValid)
			return s.Data[keyCACert], nil
		case apierrors.IsConflict(err):
			b.lostRace("Secret " + key.String())
		default:
			return nil, fmt.Errorf("writing Secret %s: %w", key, err)
		}
	}
	return nil, fmt.Errorf("the Secret %s was still changing after %d writes", key, bootstrapAttempts)
}

// issue fills s with a serving certificate, signed by a new CA or by the one s holds.
func (b *bootstrap) issue(s *corev1.Secret, keepCA bool) error {
	now := time.Now()
	begin := now.Add(-time.Hour) // as the rotator: clocks of other nodes may be behind
	var ca *rotator.KeyPairArtifacts
	var err error
	if keepCA {
		ca, err = parseCA(s.Data[keyCACert], s.Data[keyCAKey])
	} else {
		ca, err = b.cr.CreateCACert(begin, now.Add(b.cr.CaCertDuration))
	}
	if err != nil {
		return fmt.Errorf("the webhook's CA: %w", err)
	}
	cert, key, err := b.cr.CreateCertPEM(ca, begin, now.Add(b.cr.ServerCertDuration))
	if err != nil {
		return fmt.Errorf("the webhook's serving certificate: %w", err)
	}
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	s.Data[keyCACert], s.Data[keyCAKey] = ca.CertPEM, ca.KeyPEM
	s.Data[keyTLSCert], s.Data[keyTLSKey] = cert, key
	return nil
}

func parseCA(certPEM, keyPEM []byte) (*rotator.KeyPairArtifacts, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	key, ok := pair.PrivateKey.(*rsa.PrivateKey)
	if !ok || pair.Leaf == nil {
		return nil, errors.New("the CA in the Secret is not an RSA key pair")
	}
	return &rotator.KeyPairArtifacts{Cert: pair.Leaf, Key: key, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// inject sets ca as the caBundle of every webhook of one configuration, unless it already is.
// A configuration that does not exist is left to the rotator, which reports it.
func (b *bootstrap) inject(ctx context.Context, hook rotator.WebhookInfo, ca []byte) error {
	for range bootstrapAttempts {
		var obj client.Object
		switch hook.Type {
		case rotator.Validating:
			obj = &admissionregv1.ValidatingWebhookConfiguration{}
		case rotator.Mutating:
			obj = &admissionregv1.MutatingWebhookConfiguration{}
		default:
			return nil
		}
		err := b.reader.Get(ctx, types.NamespacedName{Name: hook.Name}, obj)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading webhook configuration %s: %w", hook.Name, err)
		}
		changed := false
		for _, bundle := range caBundles(obj) {
			if !bytes.Equal(*bundle, ca) {
				*bundle, changed = ca, true
			}
		}
		if !changed {
			return nil
		}
		err = b.writer.Update(ctx, obj, client.FieldOwner(b.cr.FieldOwner))
		switch {
		case err == nil:
			return nil
		case apierrors.IsConflict(err):
			b.lostRace("webhook configuration " + hook.Name)
		default:
			return fmt.Errorf("writing the CA into webhook configuration %s: %w", hook.Name, err)
		}
	}
	return fmt.Errorf("webhook configuration %s: still changing after %d writes", hook.Name, bootstrapAttempts)
}

// caBundles points at the caBundle of each webhook of a configuration.
func caBundles(obj client.Object) []*[]byte {
	var out []*[]byte
	switch c := obj.(type) {
	case *admissionregv1.ValidatingWebhookConfiguration:
		for i := range c.Webhooks {
			out = append(out, &c.Webhooks[i].ClientConfig.CABundle)
		}
	case *admissionregv1.MutatingWebhookConfiguration:
		for i := range c.Webhooks {
			out = append(out, &c.Webhooks[i].ClientConfig.CABundle)
		}
	}
	return out
}
