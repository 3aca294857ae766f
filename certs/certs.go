// Package certs runs the webhook's own CA and serving certificate when cert-manager is not installed.
package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// The names config/no-cert-manager renders (namePrefix "checkpoint-quota-"); the flags default to
// them so that the overlay only has to turn rotation on.
const (
	DefaultSecretName            = "checkpoint-quota-webhook-server-cert"
	DefaultServiceName           = "checkpoint-quota-webhook-service"
	DefaultValidatingWebhookName = "checkpoint-quota-validating-webhook-configuration"
	DefaultMutatingWebhookName   = "checkpoint-quota-mutating-webhook-configuration"
)

// namespaceFile is where a pod's service account namespace is mounted.
const namespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// Options say which Secret holds the CA and serving certificate, which Service the certificate
// is for, and which webhook configurations get its CA as caBundle.
type Options struct {
	// Namespace of the Secret and the Service; empty means the manager's own namespace
	// ($POD_NAMESPACE, else the service account's).
	Namespace             string
	SecretName            string
	ServiceName           string
	ValidatingWebhookName string
	MutatingWebhookName   string
	// CertDir is where the webhook server reads tls.crt and tls.key; the Secret is mirrored there.
	CertDir string
	// ExtraDNSNames are added to the serving certificate beside <service>.<namespace>.svc.
	ExtraDNSNames []string
	// ServerCertDuration, LookaheadInterval and CheckFrequency default to the library's
	// (one year, renewed 90 days before expiry, checked every 12 hours).
	ServerCertDuration time.Duration
	LookaheadInterval  time.Duration
	CheckFrequency     time.Duration
}

// BindFlags registers the options as --cert-rotation-* flags; CertDir is the manager's
// --webhook-cert-dir and is set by the caller.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Namespace, "cert-rotation-namespace", "", "Namespace of the certificate Secret and the webhook Service (default: the manager's own).")
	fs.StringVar(&o.SecretName, "cert-rotation-secret", DefaultSecretName, "Secret holding the CA and the serving certificate; it must exist.")
	fs.StringVar(&o.ServiceName, "cert-rotation-service", DefaultServiceName, "Service the serving certificate is issued for.")
	fs.StringVar(&o.ValidatingWebhookName, "cert-rotation-validating-webhook", DefaultValidatingWebhookName, "ValidatingWebhookConfiguration whose caBundle is kept current.")
	fs.StringVar(&o.MutatingWebhookName, "cert-rotation-mutating-webhook", DefaultMutatingWebhookName, "MutatingWebhookConfiguration whose caBundle is kept current.")
}

// resolveNamespace fills Namespace from the pod's environment when the flag left it empty.
func (o *Options) resolveNamespace() error {
	if o.Namespace != "" {
		return nil
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		o.Namespace = ns
		return nil
	}
	data, err := os.ReadFile(namespaceFile)
	if err != nil || strings.TrimSpace(string(data)) == "" {
		return errors.New("certificate rotation needs the namespace of its Secret: set --cert-rotation-namespace or POD_NAMESPACE")
	}
	o.Namespace = strings.TrimSpace(string(data))
	return nil
}

// Setup adds certificate rotation to mgr: a CA and a serving certificate kept valid in the
// Secret, that Secret mirrored into CertDir, and the CA patched into both webhook
// configurations. ready is closed once the files are in place and the CA is injected; pass the
// same channel to WaitForReady for the webhook server. ctx bounds what Setup reads and writes
// before it returns: the Secret, and the first certificate.
func Setup(ctx context.Context, mgr manager.Manager, o Options, ready chan struct{}) error {
	if mgr == nil || ready == nil {
		return errors.New("certificate rotation needs a manager and a ready channel")
	}
	if err := o.resolveNamespace(); err != nil {
		return err
	}
	if o.SecretName == "" || o.ServiceName == "" || o.CertDir == "" {
		return errors.New("certificate rotation needs --cert-rotation-secret, --cert-rotation-service and --webhook-cert-dir")
	}
	var hooks []rotator.WebhookInfo
	if o.ValidatingWebhookName != "" {
		hooks = append(hooks, rotator.WebhookInfo{Name: o.ValidatingWebhookName, Type: rotator.Validating})
	}
	if o.MutatingWebhookName != "" {
		hooks = append(hooks, rotator.WebhookInfo{Name: o.MutatingWebhookName, Type: rotator.Mutating})
	}
	key := types.NamespacedName{Namespace: o.Namespace, Name: o.SecretName}
	if err := mgr.GetAPIReader().Get(ctx, key, &corev1.Secret{}); apierrors.IsNotFound(err) {
		return fmt.Errorf("certificate rotation: Secret %s not found: the manager keeps its CA and certificate there and may update it but not create it; "+
			"create it with \"kubectl -n %s create secret generic %s\", or deploy config/no-cert-manager, which includes it", key, key.Namespace, key.Name)
	} else if err != nil {
		return fmt.Errorf("certificate rotation: reading Secret %s: %w", key, err)
	}
	if err := addSecretMirror(ctx, mgr, key, o.CertDir); err != nil {
		return fmt.Errorf("mirroring Secret %s/%s into %s: %w", o.Namespace, o.SecretName, o.CertDir, err)
	}
	cr := &rotator.CertRotator{
		SecretKey:      key,
		CertDir:        o.CertDir,
		CAName:         "checkpoint-quota-ca",
		CAOrganization: "checkpoint-quota",
		DNSName:        fmt.Sprintf("%s.%s.svc", o.ServiceName, o.Namespace),
		ExtraDNSNames: append([]string{
			fmt.Sprintf("%s.%s.svc.cluster.local", o.ServiceName, o.Namespace),
		}, o.ExtraDNSNames...),
		IsReady:  ready,
		Webhooks: hooks,
		// Every replica serves the webhooks, so every replica keeps the certificate current;
		// the races of replicas starting together are settled by bootstrap, later ones (a
		// renewal seen by two replicas at once) by the Secret's resourceVersion.
		RequireLeaderElection:  false,
		FieldOwner:             "checkpoint-quota-cert-rotation",
		ExtKeyUsages:           &[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		ServerCertDuration:     o.ServerCertDuration,
		LookaheadInterval:      o.LookaheadInterval,
		RotationCheckFrequency: o.CheckFrequency,
	}
	// AddRotator only registers: it fills cr's defaults, which bootstrap issues with.
	if err := rotator.AddRotator(mgr, cr); err != nil {
		return fmt.Errorf("adding the certificate rotator: %w", err)
	}
	b := &bootstrap{reader: mgr.GetAPIReader(), writer: mgr.GetClient(), cr: cr, log: logf.Log.WithName("cert-rotation")}
	if err := b.run(ctx); err != nil {
		return fmt.Errorf("certificate rotation: %w", err)
	}
	return nil
}

// WaitForReady returns a webhook server that starts serving only once ready is closed: before
// the first certificate is written the server could not load it, and before the CA is injected
// the kube-apiserver would not trust it. Its StartedChecker fails until then, so the manager's
// readiness probe waits too.
func WaitForReady(s webhook.Server, ready <-chan struct{}) webhook.Server {
	return &waitingServer{Server: s, ready: ready}
}

type waitingServer struct {
	webhook.Server
	ready <-chan struct{}
}

func (w *waitingServer) Start(ctx context.Context) error {
	select {
	case <-w.ready:
		return w.Server.Start(ctx)
	case <-ctx.Done():
		return nil
	}
}
