// Package apiserver holds a binary's start until the kube-apiserver answers, saying at info what it waits for.
package apiserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
)

// The first attempt gives up after FirstTimeout, so that a dropped connection is reported within
// the first second instead of after the dialer's 30 s; each later attempt waits twice as long for
// an answer (a slow apiserver still gets through), up to MaxTimeout. Between attempts the pause
// grows the same way, up to MaxPause.
const (
	FirstTimeout = 800 * time.Millisecond
	MaxTimeout   = 10 * time.Second
	MaxPause     = 10 * time.Second
)

// Wait returns once the kube-apiserver of cfg answers GET /version, or ctx's error when ctx ends
// first. Each failed attempt is logged at info with the address, the error and the attempt's
// number. An answer refusing the credentials counts as an answer: the binary's own start then
// reports it.
func Wait(ctx context.Context, cfg *rest.Config, log logr.Logger) error {
	probe := rest.CopyConfig(cfg)
	probe.QPS, probe.RateLimiter = -1, nil // one request a second at most: nothing to throttle
	dc, err := discovery.NewDiscoveryClientForConfig(probe)
	if err != nil {
		return fmt.Errorf("a client for the kube-apiserver at %s: %w", cfg.Host, err)
	}
	start := time.Now()
	timeout, pause := FirstTimeout, 500*time.Millisecond
	for attempt := 1; ; attempt++ {
		err := ask(ctx, dc.RESTClient(), timeout)
		if err == nil {
			if attempt > 1 {
				log.Info("Reached the kube-apiserver", "address", cfg.Host, "attempts", attempt, "waited", time.Since(start).Round(time.Millisecond).String())
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Info("Waiting for the kube-apiserver", "address", cfg.Host, "attempt", attempt, "error", err.Error(), "retryIn", pause.String())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		timeout, pause = min(2*timeout, MaxTimeout), min(2*pause, MaxPause)
	}
}

// ask sends one GET /version and returns nil when the kube-apiserver answered it.
func ask(ctx context.Context, c rest.Interface, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := c.Get().AbsPath("/version").Do(ctx).Error()
	if err == nil || apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err) {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return fmt.Errorf("no answer within %s: %w", timeout, err)
	}
	return err
}
