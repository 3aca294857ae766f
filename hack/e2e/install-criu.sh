#!/usr/bin/env bash
# Installs CRIU into every node of a kind cluster: containerd checkpoints a container with the
# criu binary, which kind's node image does not ship.
#   hack/e2e/install-criu.sh <cluster>
set -euo pipefail
cluster=${1:?usage: $0 <kind cluster name>}
for node in $(kind get nodes --name "$cluster"); do
  echo "installing criu on $node"
  docker exec "$node" bash -c '
    set -euo pipefail
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    if ! apt-get install -y -qq criu; then
      # Not in this Debian release: the CRIU project builds packages on openSUSE OBS.
      apt-get install -y -qq curl gnupg ca-certificates
      . /etc/os-release
      repo="https://download.opensuse.org/repositories/devel:/tools:/criu/Debian_${VERSION_ID}"
      curl -fsSL "$repo/Release.key" | gpg --dearmor > /etc/apt/trusted.gpg.d/criu.gpg
      echo "deb $repo/ /" > /etc/apt/sources.list.d/criu.list
      apt-get update -qq
      apt-get install -y -qq criu
    fi
    criu --version'
done
