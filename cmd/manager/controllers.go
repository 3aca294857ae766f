package main

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/checkpoint-quota/checkpoint-quota/controllers"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// setupControllers registers the pruning controller and the quota status controllers.
func setupControllers(ctx context.Context, mgr ctrl.Manager, o options, policies *policy.Parsed) error {
	opts := controllers.DefaultOptions
	opts.ResyncPeriod = o.resyncPeriod
	opts.NodeGracePeriod = o.nodeGracePeriod
	opts.PruneConcurrency = o.pruneConcurrency
	opts.StatusInterval = o.statusInterval
	opts.Policies = policies
	_, err := controllers.Setup(ctx, mgr, opts)
	return err
}
