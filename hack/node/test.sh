#!/usr/bin/env bash
# `make test-node`: starts a real node (hack/node/node.sh up), runs the node suite (test/node)
# against it, and stops the node whatever the suite's outcome.
#
#   NODE_TEST_FLAGS   extra flags for go test, such as -ginkgo.focus=Helm
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}

HELM=$(./hack/helm.sh)
export HELM
# cert-manager's images for the config/default lane, built once from CERT_MANAGER_SRC; without
# them (and without a source) it says the lane will be skipped, and the other lanes run.
./hack/node/cert-manager.sh >/dev/null
./hack/node/node.sh up
trap './hack/node/node.sh down' EXIT
# shellcheck disable=SC2086
CHECKPOINT_QUOTA_NODE="$root/.local/node/env" go test -count=1 -timeout 60m ./test/node/ -v \
  -ginkgo.v ${NODE_TEST_FLAGS:-}
