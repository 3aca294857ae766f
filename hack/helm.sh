#!/usr/bin/env bash
# Provides the helm CLI for the chart tests and `make helm-lint` without downloading a
# prebuilt binary: it is built from its Go module (helm.sh/helm/v4, the module proxy is the
# only network this project may rely on) into a cache outside the clone, keyed by version,
# and reused afterwards.
#
# Prints the path of the helm binary.
#
#   HELM          used as is when it is an executable
#   HELM_VERSION  default: v4.3.1
#   HELM_CACHE    default: ${XDG_CACHE_HOME:-~/.cache}/checkpoint-quota/helm
set -euo pipefail

if [ -n "${HELM:-}" ] && [ -x "$HELM" ]; then
  echo "$HELM"
  exit 0
fi

HELM_VERSION=${HELM_VERSION:-v4.3.1}
cache=${HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/checkpoint-quota/helm}
dest="$cache/$HELM_VERSION"

if [ -x "$dest/helm" ]; then
  echo "$dest/helm"
  exit 0
fi

echo "helm: building helm $HELM_VERSION into $dest (first time only, a few minutes)" >&2
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
mkdir -p "$dest.tmp"
# `go install module@version` builds with the module's own go.mod (its replace directives
# included), the way its release does; -X sets the version `helm version` prints.
GOBIN="$dest.tmp" go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
  "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" >&2
rm -rf "$dest"
mv "$dest.tmp" "$dest"
echo "helm: ready: $dest/helm" >&2
echo "$dest/helm"
