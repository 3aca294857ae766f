// Package deploy tests the kustomize manifests of config/: what they render and whether the kube-apiserver accepts them.
package deploy
