#!/usr/bin/env bash
# cert-manager for the real node's config/default lane: its controller, cainjector and webhook
# built from cert-manager's source into images the way hack/node/node.sh builds the project's
# own (static binaries on an empty base, go-containerregistry, no Docker, no registry), and its
# Helm chart rendered into one manifest that names exactly those images. cert-manager's
# commands are Go modules of their own that the module proxy does not serve, so they are
# built from a checkout of the release's tag; nothing of cert-manager enters this repository.
#
# Everything is cached outside the clone, under
# ${XDG_CACHE_HOME:-~/.cache}/checkpoint-quota/cert-manager/<version>:
#   src/             the tag's source (exported from CERT_MANAGER_SRC when that is a git repository)
#   images/*.tar     the three images, for `ctr images import`
#   cert-manager.yaml   the chart rendered (CRDs included, startupapicheck off, pullPolicy Never)
#
#   cert-manager.sh       prints the images' directory; when there are neither cached images
#                         nor a source, prints nothing and says on stderr why (exit 0): the lane
#                         is skipped, not failed
#   cert-manager.sh env   the same, as lines for the node's environment file:
#                         CERT_MANAGER_IMAGES=<dir> and CERT_MANAGER_MANIFEST=<file>, or
#                         CERT_MANAGER_SKIPPED=<why>
#
#   CERT_MANAGER_VERSION  default v1.21.1
#   CERT_MANAGER_SRC      a cert-manager source tree checked out at that tag, or a git
#                         repository (a clone, or a bare mirror) holding the tag
#   CERT_MANAGER_CACHE    default ${XDG_CACHE_HOME:-~/.cache}/checkpoint-quota/cert-manager/<version>
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VERSION=${CERT_MANAGER_VERSION:-v1.21.1}
cache=${CERT_MANAGER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/checkpoint-quota/cert-manager/$VERSION}
images="$cache/images"
manifest="$cache/cert-manager.yaml"
# The three commands the config/default lane needs (acmesolver and startupapicheck are not).
COMPONENTS="controller cainjector webhook"
# The user of cert-manager's own images' base (distroless nonroot); its chart asks runAsNonRoot.
IMAGE_USER=1000:1000
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

log() { echo "cert-manager: $*" >&2; }
die() { echo "cert-manager: $*" >&2; exit 1; }

image_name() { echo "quay.io/jetstack/cert-manager-$1:$VERSION"; }

ready() {
  [ -f "$manifest" ] || return 1
  local c
  for c in $COMPONENTS; do [ -f "$images/$c.tar" ] || return 1; done
}

# source_tree: $cache/src, exported from CERT_MANAGER_SRC's git repository when it is one.
source_tree() {
  if [ -f "$cache/src/go.mod" ]; then return 0; fi
  [ -n "${CERT_MANAGER_SRC:-}" ] || return 1
  [ -d "$CERT_MANAGER_SRC" ] || die "CERT_MANAGER_SRC=$CERT_MANAGER_SRC: no such directory"
  if git -C "$CERT_MANAGER_SRC" rev-parse --git-dir >/dev/null 2>&1 &&
    git -C "$CERT_MANAGER_SRC" rev-parse -q --verify "refs/tags/$VERSION" >/dev/null; then
    log "exporting the tag $VERSION of $CERT_MANAGER_SRC into $cache/src"
    rm -rf "$cache/src.tmp" && mkdir -p "$cache/src.tmp"
    git -C "$CERT_MANAGER_SRC" archive "refs/tags/$VERSION" | tar -x -C "$cache/src.tmp"
    git -C "$CERT_MANAGER_SRC" rev-parse "refs/tags/$VERSION^{commit}" > "$cache/src.tmp/.commit"
    mv "$cache/src.tmp" "$cache/src"
  elif [ -f "$CERT_MANAGER_SRC/cmd/controller/go.mod" ]; then
    log "copying the source tree $CERT_MANAGER_SRC (taken to be $VERSION) into $cache/src"
    rm -rf "$cache/src.tmp" && mkdir -p "$cache"
    cp -r "$CERT_MANAGER_SRC" "$cache/src.tmp"
    mv "$cache/src.tmp" "$cache/src"
  else
    die "CERT_MANAGER_SRC=$CERT_MANAGER_SRC is neither a git repository with the tag $VERSION nor a cert-manager source tree (no cmd/controller/go.mod)"
  fi
}

build() {
  local src="$cache/src" commit="" c start=$SECONDS
  [ -f "$src/.commit" ] && commit=$(cat "$src/.commit")
  local ld="-s -w -X github.com/cert-manager/cert-manager/pkg/util.AppVersion=$VERSION -X github.com/cert-manager/cert-manager/pkg/util.AppGitCommit=$commit -X github.com/cert-manager/cert-manager/pkg/util.AppGitState=clean"
  mkdir -p "$cache/bin"
  for c in $COMPONENTS; do
    [ -x "$cache/bin/$c" ] && continue
    log "building $c $VERSION (first time only; nice -n 19)"
    (
      cd "$src/cmd/$c"
      # v1.21.1 requires github.com/Venafi/vcert/v5 v5.13.7, which does not build with the
      # modules it is resolved with; v5.13.9 does.
      if grep -q 'github.com/Venafi/vcert/v5 v5.13.[0-8]\b' go.mod ../../go.mod 2>/dev/null; then
        go mod edit -replace github.com/Venafi/vcert/v5=github.com/Venafi/vcert/v5@v5.13.9
      fi
      CGO_ENABLED=0 nice -n 19 go build -trimpath -ldflags "$ld" -o "$cache/bin/$c.tmp" .
    ) >&2 || die "building cert-manager's $c from $src failed"
    mv "$cache/bin/$c.tmp" "$cache/bin/$c"
  done
  log "binaries ready in $((SECONDS - start)) s"
}

# make_images: one image per command, named as cert-manager's chart names them.
make_images() {
  local tool c
  tool=$(mktemp -d)
  (cd "$root/hack/node/tools" && CGO_ENABLED=0 go build -trimpath -o "$tool/image" ./image) >&2
  rm -rf "$images.tmp" && mkdir -p "$images.tmp"
  for c in $COMPONENTS; do
    "$tool/image" -o "$images.tmp/$c.tar" -tag "$(image_name "$c")" -entrypoint "/$c" -user "$IMAGE_USER" \
      -file "/$c=$cache/bin/$c" >&2
  done
  rm -rf "$tool" "$images"
  mv "$images.tmp" "$images"
}

# render: cert-manager's own chart, from the tag's deploy/charts, with the images above.
render() {
  local helm chart c
  helm=$("$root/hack/helm.sh")
  chart="$cache/src/deploy/charts/cert-manager"
  [ -f "$chart/Chart.yaml" ] || die "no chart in $chart"
  local set=(--set crds.enabled=true --set startupapicheck.enabled=false
    --set image.tag="$VERSION" --set image.pullPolicy=Never
    --set webhook.image.tag="$VERSION" --set webhook.image.pullPolicy=Never
    --set cainjector.image.tag="$VERSION" --set cainjector.image.pullPolicy=Never)
  "$helm" template cert-manager "$chart" --namespace cert-manager "${set[@]}" > "$manifest.tmp" \
    || die "rendering cert-manager's chart failed"
  for c in $COMPONENTS; do
    grep -q "image: \"\?$(image_name "$c")\"\?$" "$manifest.tmp" \
      || die "the rendered chart does not name the image $(image_name "$c"): $(grep 'image:' "$manifest.tmp" | sort -u | tr '\n' ' ')"
  done
  mv "$manifest.tmp" "$manifest"
}

skipped=""
main() {
  mkdir -p "$cache"
  # One build at a time (make test-node and .ci/run may both ask).
  exec 9>"$cache/.lock"
  flock 9
  if ! ready; then
    if ! source_tree; then
      skipped="no cert-manager $VERSION images in $cache and no source: set CERT_MANAGER_SRC to a cert-manager git repository or source tree at $VERSION to build them (hack/node/cert-manager.sh)"
      return 0
    fi
    build
    make_images
    render
    log "images and manifest ready in $cache"
  fi
}

mode=${1:-dir}
case "$mode" in
  dir|env) ;;
  *) echo "usage: $0 [env]" >&2; exit 2 ;;
esac
main
if [ -n "$skipped" ]; then
  log "skipped: $skipped"
  if [ "$mode" = env ]; then echo "CERT_MANAGER_SKIPPED=$skipped"; fi
  exit 0
fi
if [ "$mode" = env ]; then
  echo "CERT_MANAGER_IMAGES=$images"
  echo "CERT_MANAGER_MANIFEST=$manifest"
else
  echo "$images"
fi
