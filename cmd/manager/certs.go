package main

import (
	"context"
	"flag"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/checkpoint-quota/checkpoint-quota/certs"
)

// certRotation is the built-in certificate rotation, for clusters without cert-manager
// (config/no-cert-manager turns it on).
type certRotation struct {
	enabled bool
	opts    certs.Options
	ready   chan struct{}
}

// bindCertRotationFlags registers --cert-rotation and its --cert-rotation-* options.
func bindCertRotationFlags(fs *flag.FlagSet) *certRotation {
	c := &certRotation{ready: make(chan struct{})}
	fs.BoolVar(&c.enabled, "cert-rotation", false, "Run the webhook's own CA and serving certificate (kept in a Secret, written into --webhook-cert-dir, caBundle patched on both webhook configurations) instead of reading cert-manager's.")
	c.opts.BindFlags(fs)
	return c
}

// server holds the webhook server back until the certificates are ready, when rotation is on.
func (c *certRotation) server(s webhook.Server) webhook.Server {
	if !c.enabled {
		return s
	}
	return certs.WaitForReady(s, c.ready)
}

// setup adds the rotation to the manager, when it is on.
func (c *certRotation) setup(ctx context.Context, mgr ctrl.Manager, certDir string) error {
	if !c.enabled {
		return nil
	}
	c.opts.CertDir = certDir
	return certs.Setup(ctx, mgr, c.opts, c.ready)
}
