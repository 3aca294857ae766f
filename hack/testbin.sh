#!/usr/bin/env bash
# Provides etcd, kube-apiserver, kube-controller-manager and kubectl for envtest without downloading
# prebuilt binaries: they are built from Go modules (the module proxy is the
# only network this project may rely on) into a cache outside the clone,
# keyed by version, and reused afterwards.
#
# Prints the directory that holds the three binaries; point
# KUBEBUILDER_ASSETS at it.
#
#   KUBEBUILDER_ASSETS  used as is when it already holds the three binaries
#   K8S_VERSION         default: derived from k8s.io/api in go.mod (v0.X.Y -> v1.X.Y)
#   ETCD_VERSION        default: v3.6.16
#   TESTBIN_CACHE       default: ${XDG_CACHE_HOME:-~/.cache}/checkpoint-quota/k8s
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

have_all() {
  [ -x "$1/etcd" ] && [ -x "$1/kube-apiserver" ] && [ -x "$1/kubectl" ] && [ -x "$1/kube-controller-manager" ]
}

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && have_all "$KUBEBUILDER_ASSETS"; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

if [ -z "${K8S_VERSION:-}" ]; then
  api=$(cd "$root" && go list -m -f '{{.Version}}' k8s.io/api)
  K8S_VERSION="v1.${api#v0.}"
fi
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
cache=${TESTBIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/checkpoint-quota/k8s}
dest="$cache/$K8S_VERSION-etcd-$ETCD_VERSION"

if have_all "$dest"; then
  echo "$dest"
  exit 0
fi

log() { echo "testbin: $*" >&2; }
log "building etcd $ETCD_VERSION, kube-apiserver and kubectl $K8S_VERSION into $dest (first time only, several minutes)"

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$dest.tmp"

# kube-apiserver and kubectl: k8s.io/kubernetes replaces its staging modules
# with local paths, so a consumer must replace each of them with the
# published v0.X.Y of the same release.
staging="v0.${K8S_VERSION#v1.}"
mkdir "$work/k8s"
(
  cd "$work/k8s"
  go mod init testbin.local/k8s >/dev/null 2>&1
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  mods=$(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod")
  args=(-require="k8s.io/kubernetes@$K8S_VERSION")
  for m in $mods; do args+=(-replace="$m=$m@$staging"); done
  go mod edit "${args[@]}"
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  go mod tidy >&2
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
  go build -trimpath -ldflags "$ldflags" -o "$dest.tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  go build -trimpath -ldflags "$ldflags" -o "$dest.tmp/kubectl" k8s.io/kubernetes/cmd/kubectl
  go build -trimpath -ldflags "$ldflags" -o "$dest.tmp/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager
) >&2

mkdir "$work/etcd"
(
  cd "$work/etcd"
  go mod init testbin.local/etcd >/dev/null 2>&1
  go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  go mod tidy >&2
  go build -trimpath -ldflags "-s -w" -o "$dest.tmp/etcd" .
) >&2

rm -rf "$dest"
mv "$dest.tmp" "$dest"
log "ready: $dest"
echo "$dest"
