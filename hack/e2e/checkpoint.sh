#!/usr/bin/env bash
# Checkpoints a container through the kubelet checkpoint API (POST /checkpoint/{ns}/{pod}/{container}),
# reached through the kube-apiserver's node proxy, as an administrator would.
#   hack/e2e/checkpoint.sh <namespace> <pod> <container>
set -euo pipefail
ns=${1:?namespace}; pod=${2:?pod}; container=${3:?container}
node=$(kubectl -n "$ns" get pod "$pod" -o jsonpath='{.spec.nodeName}')
kubectl create --raw "/api/v1/nodes/$node/proxy/checkpoint/$ns/$pod/$container" -f /dev/null
echo
