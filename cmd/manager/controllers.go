package main

import (
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/checkpoint-quota/checkpoint-quota/controllers"
)

// setupControllers registers the pruning controller and the quota status controllers.
func setupControllers(mgr ctrl.Manager, o options) error {
	_, err := controllers.Setup(mgr, controllers.Options{
		ResyncPeriod:     o.resyncPeriod,
		NodeGracePeriod:  o.nodeGracePeriod,
		PruneConcurrency: o.pruneConcurrency,
		StatusInterval:   o.statusInterval,
	})
	return err
}
