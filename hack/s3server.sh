#!/usr/bin/env bash
# Provides a real S3-compatible server for the offload tests and `make run`: SeaweedFS's
# `weed` binary, built from its Go module (the module proxy is the only network this
# project may rely on) into a cache outside the clone, keyed by version, and reused
# afterwards. docs/offload.md says why SeaweedFS and not MinIO (MinIO's server is AGPL).
#
# Prints the path of the weed binary; point CHECKPOINT_S3_SERVER at it.
#
#   CHECKPOINT_S3_SERVER  used as is when it names an executable
#   SEAWEEDFS_VERSION     default: v0.0.0-20261109003541-7506e5f91cd6
#   S3SERVER_CACHE        default: ${XDG_CACHE_HOME:-~/.cache}/checkpoint-quota/seaweedfs
#   S3SERVER_CACHED_ONLY  when set, build nothing: print the cached binary or fail (exit 3),
#                         as the tests do, so that a test never waits for a build
set -euo pipefail

if [ -n "${CHECKPOINT_S3_SERVER:-}" ] && [ -x "$CHECKPOINT_S3_SERVER" ]; then
  echo "$CHECKPOINT_S3_SERVER"
  exit 0
fi

SEAWEEDFS_VERSION=${SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}
cache=${S3SERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/checkpoint-quota/seaweedfs}
dest="$cache/$SEAWEEDFS_VERSION"

if [ -x "$dest/weed" ]; then
  echo "$dest/weed"
  exit 0
fi

log() { echo "s3server: $*" >&2; }
if [ -n "${S3SERVER_CACHED_ONLY:-}" ]; then
  log "SeaweedFS $SEAWEEDFS_VERSION is not built yet: run hack/s3server.sh (.ci/run does) to build it into $dest"
  exit 3
fi
# One build at a time: a second caller waits for the first, then finds its binary.
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -x "$dest/weed" ]; then
  echo "$dest/weed"
  exit 0
fi
log "building SeaweedFS $SEAWEEDFS_VERSION into $dest (first time only, many minutes)"

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
(
  cd "$work"
  go mod init testbin.local/seaweedfs >/dev/null 2>&1
  # `go install module@version` refuses a module whose go.mod replaces modules: a
  # consumer's go.mod must carry the same replacements (those to other modules; a
  # replacement by a local path is the author's and is commented out upstream).
  gomod=$(go mod download -json "github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  args=(-require="github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION")
  while read -r from to version; do
    args+=(-replace="$from=$to@$version")
  done < <(sed -n 's#^replace[[:space:]]\{1,\}\([^[:space:]]*\)[[:space:]]*=>[[:space:]]*\([^./][^[:space:]]*\)[[:space:]]\{1,\}\(v[^[:space:]]*\).*#\1 \2 \3#p' "$gomod")
  go mod edit "${args[@]}"
  # -mod=mod resolves only what the weed command imports, where go mod tidy would fetch
  # the test dependencies of every package of the module too.
  nice -n 19 go build -trimpath -ldflags "-s -w" -o "$dest.tmp/weed" github.com/seaweedfs/seaweedfs/weed
) >&2

rm -rf "$dest"
mv "$dest.tmp" "$dest"
log "ready: $dest/weed"
echo "$dest/weed"
