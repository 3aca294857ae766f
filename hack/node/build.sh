#!/usr/bin/env bash
# Builds, once, everything a real single node needs besides the test bed's control plane
# (hack/testbin.sh): the kubelet and kube-scheduler, containerd, runc, the CNI plugins, CRIU
# and a pause binary. Nothing is downloaded prebuilt: Go programs come from the module proxy,
# CRIU from Debian's source package. Each component is cached under its own version key in
# ${XDG_CACHE_HOME:-~/.cache}/checkpoint-quota/node, so that a second run costs seconds.
#
# Prints the directory holding every binary (bin/ of the cache, made of links).
#
#   RUNTIME             containerd (default) or crio (hack/node/crio.sh: CRI-O, pinns and
#                       copyimg from CRI-O's module, conmon from Debian)
#   K8S_VERSION         default: from k8s.io/api in go.mod, as hack/testbin.sh derives it
#   CONTAINERD_VERSION  default: v2.4.2
#   RUNC_VERSION        default: v1.5.3
#   CNI_VERSION         default: v1.10.0
#   CRIU_VERSION        default: 4.2.1-1 (a Debian source package version, from sid)
#   NODE_CACHE          default: ${XDG_CACHE_HOME:-~/.cache}/checkpoint-quota/node
#   NODE_CACHED_ONLY    when set, build nothing: print the directory when every component is
#                       cached, else say which is missing and exit 3 (.ci/run asks this first)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here="$root/hack/node"
RUNTIME=${RUNTIME:-containerd}
if [ -z "${K8S_VERSION:-}" ]; then
  api=$(cd "$root" && go list -m -f '{{.Version}}' k8s.io/api)
  K8S_VERSION="v1.${api#v0.}"
fi
CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.4.2}
RUNC_VERSION=${RUNC_VERSION:-v1.5.3}
CNI_VERSION=${CNI_VERSION:-v1.10.0}
CRIU_VERSION=${CRIU_VERSION:-4.2.1-1}
cache=${NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/checkpoint-quota/node}

export GOTOOLCHAIN=local GOFLAGS=-mod=mod
log() { echo "node-build: $*" >&2; }
die() { echo "node-build: $*" >&2; exit 1; }

# Debian packages a build needs, installed only when missing.
need_debs() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "needs the Debian packages ${missing[*]}: install them as root (apt-get install ${missing[*]})"
  log "installing ${missing[*]}"
  { apt-get install -y --no-install-recommends "${missing[@]}" || { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; }; } >&2 \
    || die "apt-get could not install ${missing[*]}"
}

# A private, writable copy of a module's source (the module cache is read-only).
module_copy() { # module@version dest
  local dir
  dir=$(go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -n "$dir" ] || die "the module proxy has no $1"
  cp -r "$dir" "$2"
  chmod -R u+w "$2"
}

# build_component NAME VERSION FUNCTION: runs FUNCTION with $out (a fresh directory) unless
# $cache/NAME-VERSION already exists; the directory is renamed into place only when complete.
build_component() {
  local dest="$cache/$1-$2"
  if [ -d "$dest" ]; then return 0; fi
  if [ -n "${NODE_CACHED_ONLY:-}" ]; then
    log "$1 $2 is not built yet: run RUNTIME=$RUNTIME hack/node/build.sh to build it into $dest"
    exit 3
  fi
  log "building $1 $2 into $dest (first time only)"
  local start=$SECONDS
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  work=$(mktemp -d)
  out="$dest.tmp" "$3" || { rm -rf "$work"; die "building $1 $2 failed"; }
  rm -rf "$work"
  mv "$dest.tmp" "$dest"
  log "$1 $2 ready in $((SECONDS - start)) s"
}

build_kubernetes() {
  local staging="v0.${K8S_VERSION#v1.}" gomod mods args=()
  (
    cd "$work" && go mod init node.local/k8s >/dev/null 2>&1
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    mods=$(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod")
    args=(-require="k8s.io/kubernetes@$K8S_VERSION")
    for m in $mods; do args+=(-replace="$m=$m@$staging"); done
    go mod edit "${args[@]}"
    printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kubelet"\n\t_ "k8s.io/kubernetes/cmd/kube-scheduler"\n)\n' > tools.go
    go mod tidy
    local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
    CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/kubelet" k8s.io/kubernetes/cmd/kubelet
    CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/kube-scheduler" k8s.io/kubernetes/cmd/kube-scheduler
  ) >&2
}

build_containerd() {
  (
    module_copy "github.com/containerd/containerd/v2@$CONTAINERD_VERSION" "$work/src"
    cd "$work/src"
    local ld="-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION"
    CGO_ENABLED=1 go build -trimpath -tags "no_btrfs no_devmapper no_zfs" -ldflags "$ld" -o "$out/containerd" ./cmd/containerd
    CGO_ENABLED=1 go build -trimpath -tags "no_btrfs no_devmapper no_zfs" -ldflags "$ld" -o "$out/ctr" ./cmd/ctr
    CGO_ENABLED=0 go build -trimpath -ldflags "$ld" -o "$out/containerd-shim-runc-v2" ./cmd/containerd-shim-runc-v2
  ) >&2
}

build_runc() {
  need_debs libseccomp-dev pkg-config gcc libc6-dev
  (
    module_copy "github.com/opencontainers/runc@$RUNC_VERSION" "$work/src"
    cd "$work/src"
    CGO_ENABLED=1 go build -trimpath -tags "seccomp urfave_cli_no_docs" -ldflags "-s -w" -o "$out/runc" .
  ) >&2
}

build_cni() {
  (
    module_copy "github.com/containernetworking/plugins@$CNI_VERSION" "$work/src"
    cd "$work/src"
    for p in main/bridge main/loopback ipam/host-local; do
      CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/$(basename $p)" "./plugins/$p"
    done
  ) >&2
}

# CRIU: Debian bookworm's 3.17 fails `criu check` on recent kernels (vDSO), so CRIU is built
# from sid's source package with bookworm's libraries. sid's sources list is private to this
# build (its own lists directory), never added to the system's apt configuration.
build_criu() {
  need_debs dpkg-dev gcc make pkg-config python3 python3-protobuf protobuf-c-compiler protobuf-compiler \
    libprotobuf-dev libprotobuf-c-dev libnl-3-dev libnet1-dev libcap-dev libbsd-dev libnftables-dev
  (
    local uri
    uri=$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
    uri=${uri:-http://deb.debian.org/debian}
    mkdir -p "$work/apt/lists/partial" "$work/src"
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri sid main" > "$work/apt/sources.list"
    local opts=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
      -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=")
    apt-get "${opts[@]}" update
    cd "$work/src"
    apt-get "${opts[@]}" source --download-only "criu=$CRIU_VERSION"
    local orig
    orig=$(ls criu_*.orig.tar.*)
    tar -xf "$orig"
    cd criu-*/
    nice make -j"$(nproc)" criu
    install -m 0755 criu/criu "$out/criu"
  ) >&2
}

case "$RUNTIME" in
  containerd)
    build_component containerd "$CONTAINERD_VERSION" build_containerd
    runtime_dir="containerd-$CONTAINERD_VERSION" runtime_key=$CONTAINERD_VERSION ;;
  crio)
    # shellcheck source=hack/node/crio.sh
    . "$here/crio.sh"
    build_component crio "$CRIO_VERSION" build_crio
    # conmon, CRI-O's container monitor, is C: Debian's package (bookworm's 2.1.6).
    need_debs conmon
    runtime_dir="crio-$CRIO_VERSION" runtime_key="crio$CRIO_VERSION-conmon$(dpkg-query -W -f='${Version}' conmon)" ;;
  *) die "RUNTIME=$RUNTIME: containerd or crio" ;;
esac
build_component runc "$RUNC_VERSION" build_runc
build_component cni "$CNI_VERSION" build_cni
build_component criu "$CRIU_VERSION" build_criu
# Last: it shares most packages with the test bed's kube-apiserver, already in Go's build cache.
build_component kubernetes "$K8S_VERSION" build_kubernetes
# Not built, but needed at run time: CRIU locks a dumped container's network with
# iptables-restore (its default network-lock method).
need_debs iptables

# One directory of links, keyed by every version, for PATH.
key="$RUNTIME-$K8S_VERSION-$runtime_key-$RUNC_VERSION-$CNI_VERSION-criu$CRIU_VERSION"
bin="$cache/bin-$key"
if [ ! -d "$bin" ]; then
  mkdir -p "$bin.tmp"
  for c in "kubernetes-$K8S_VERSION" "$runtime_dir" "runc-$RUNC_VERSION" "cni-$CNI_VERSION" "criu-$CRIU_VERSION"; do
    ln -sf "$cache/$c"/* "$bin.tmp/"
  done
  if [ "$RUNTIME" = crio ]; then ln -sf "$(command -v conmon)" "$bin.tmp/conmon"; fi
  mv "$bin.tmp" "$bin"
fi
echo "$bin"
