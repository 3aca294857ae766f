package testenv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// WebhookServer is a manager serving the project's webhooks where the test bed's
// apiserver sends admission requests.
type WebhookServer struct {
	cancel context.CancelFunc
	done   chan error
}

// StartWebhookServer starts a manager whose webhook server listens at Env.Webhook's host,
// port and certificate directory, lets register add the webhooks, and returns once the
// server answers TLS. It needs Options{Webhooks: true}.
func (e *Env) StartWebhookServer(register func(ctrl.Manager) error) (*WebhookServer, error) {
	if e.Webhook == nil {
		return nil, errors.New("the test bed was started without webhooks: use Options{Webhooks: true}")
	}
	mgr, err := ctrl.NewManager(e.Config, ctrl.Options{
		Scheme:                 Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		WebhookServer: webhook.NewServer(webhook.Options{
			Host:    e.Webhook.LocalServingHost,
			Port:    e.Webhook.LocalServingPort,
			CertDir: e.Webhook.LocalServingCertDir,
		}),
	})
	if err != nil {
		return nil, fmt.Errorf("creating the webhook manager: %w", err)
	}
	if err := register(mgr); err != nil {
		return nil, fmt.Errorf("registering the webhooks: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &WebhookServer{cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- mgr.Start(ctx) }()
	if err := e.waitForWebhookServer(s.done); err != nil {
		cancel()
		return nil, err
	}
	return s, nil
}

// waitForWebhookServer dials the webhook server until it completes a TLS handshake.
func (e *Env) waitForWebhookServer(done chan error) error {
	addr := e.WebhookAddress()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr,
			&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only checks that the server is up
		if err == nil {
			return conn.Close()
		}
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("the webhook manager stopped before serving: %w", err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the webhook server at %s did not start: %w", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WebhookAddress is host:port of the webhook server.
func (e *Env) WebhookAddress() string {
	return net.JoinHostPort(e.Webhook.LocalServingHost, strconv.Itoa(e.Webhook.LocalServingPort))
}

// Stop stops the webhook server and waits until its port is closed.
func (s *WebhookServer) Stop() error {
	s.cancel()
	select {
	case err := <-s.done:
		return err
	case <-time.After(30 * time.Second):
		return errors.New("the webhook manager did not stop within 30s")
	}
}
