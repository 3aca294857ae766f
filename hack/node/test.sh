#!/usr/bin/env bash
# `make test-node`: for each runtime, starts a fresh real node on it (hack/node/node.sh up),
# runs the node suite (test/node) against it, and stops the node whatever the suite's outcome.
# Fails when the suite fails on any runtime.
#
#   NODE_RUNTIMES     the runtimes, in order (default: containerd crio). A CRI-O lane whose
#                     binaries cannot be built here (RUNTIME=crio hack/node/build.sh) is
#                     skipped, saying why; containerd's must build.
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

failed=()
for runtime in ${NODE_RUNTIMES:-containerd crio}; do
  echo "test-node: the suite on $runtime"
  if [ "$runtime" = crio ] && ! out=$(RUNTIME=crio ./hack/node/build.sh 2>&1); then
    echo "test-node: SKIPPED on crio: CRI-O's node binaries could not be built here (RUNTIME=crio hack/node/build.sh):"
    echo "$out" | tail -n 5
    continue
  fi
  RUNTIME=$runtime ./hack/node/node.sh up
  trap './hack/node/node.sh down' EXIT
  # shellcheck disable=SC2086
  CHECKPOINT_QUOTA_NODE="$root/.local/node/env" go test -count=1 -timeout 60m ./test/node/ -v \
    -ginkgo.v ${NODE_TEST_FLAGS:-} || failed+=("$runtime")
  ./hack/node/node.sh down
  trap - EXIT
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "test-node: the suite failed on ${failed[*]}"
  exit 1
fi
