package main

import (
	ctrl "sigs.k8s.io/controller-runtime"
)

// setupControllers registers the quota controllers with the manager.
// The controllers package fills this in.
func setupControllers(_ ctrl.Manager, _ options) error {
	return nil
}
