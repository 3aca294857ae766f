#!/usr/bin/env bash
# A real single Kubernetes node on this machine: etcd, kube-apiserver, kube-controller-manager
# and kube-scheduler (hack/testbin.sh), containerd with runc and CRIU, a bridge network (CNI),
# and a kubelet, each a process of its own; the project's image imported into containerd.
# With RUNTIME=crio, CRI-O with runc and CRIU instead of containerd (hack/node/crio.sh).
# docs/real-node.md says why each setting is what it is.
#
#   node.sh up     starts the node; writes .local/node/env (KUBECONFIG, NODE_* ...)
#   node.sh down   stops everything `up` started, unmounts what the kubelet and containerd
#                  mounted, deletes the bridge and the node's directory
#   node.sh restart NAME   stops and starts one component (kubelet, containerd ...) again
#   node.sh import TARBALL...   imports images into the running node's runtime
#
#   RUNTIME       containerd (default) or crio
#   NODE_NAME     default: cq-node
#   NODE_SUBNET   the pods' /24, default 10.222.0 (the node's own address is .1)
#   SERVICE_NET   the Services' /24, default 10.223.0 (the kubernetes Service is .1)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here="$root/hack/node"
envfile="$root/.local/node/env"
# shellcheck source=hack/node/crio.sh
. "$here/crio.sh"
RUNTIME=${RUNTIME:-containerd}
NODE_NAME=${NODE_NAME:-cq-node}
NODE_SUBNET=${NODE_SUBNET:-10.222.0}
SERVICE_NET=${SERVICE_NET:-10.223.0}
BRIDGE=${BRIDGE:-cqbr0}
# Kernel settings the kubelet changes at start (pkg/kubelet/cm/container_manager_linux.go).
KERNEL_TUNABLES="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes"
NODE_IP="$NODE_SUBNET.1"
NODE_IMAGE=${NODE_IMAGE:-checkpoint-quota:node}
# The process the node suite checkpoints (hack/node/tools/workload).
WORKLOAD_IMAGE=${WORKLOAD_IMAGE:-cq-workload:node}
SERVICE_IP="$SERVICE_NET.1"

log() { echo "node: $*" >&2; }
die() { echo "node: $*" >&2; exit 1; }

# start NAME CMD...: runs CMD in its own session, its output in logs/NAME.log, its pid in pids/NAME.
start() {
  local name=$1; shift
  setsid "$@" >>"$D/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$D/pids/$name"
  # The command, for `node.sh restart NAME`.
  printf '%q ' "$@" > "$D/pids/$name.cmd"
}

# wait_for WHAT SECONDS CMD...: polls CMD until it succeeds; on time-out shows the log named WHAT.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ -f "$D/pids/$what" ] && ! kill -0 "$(cat "$D/pids/$what")" 2>/dev/null; then
      tail -n 30 "$D/logs/$what.log" >&2 || true
      die "$what exited at start (log: $D/logs/$what.log)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      tail -n 30 "$D/logs/$what.log" >&2 || true
      die "$what not ready after ${secs}s (log: $D/logs/$what.log)"
    fi
    sleep 0.5
  done
}

# preflight: what the machine must offer, each missing piece named with why it is needed.
preflight() {
  [ "$(uname -s)" = Linux ] || die "a real node needs Linux"
  [ "$(id -u)" = 0 ] || die "a real node needs root: the kubelet mounts volumes, containerd creates namespaces and CRIU dumps processes"
  [ -d /sys/fs/cgroup ] || die "no /sys/fs/cgroup: the kubelet and runc need cgroups"
  command -v ip >/dev/null || die "no 'ip' (iproute2): the node's bridge is made with it"
  command -v mount >/dev/null || die "no 'mount': the kubelet mounts volumes with it"
  command -v openssl >/dev/null || die "no 'openssl': the node's certificates are made with it"
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    die "the bridge $BRIDGE exists already: another node is up (hack/node/node.sh down stops it)"
  fi
  local criu_out
  if ! criu_out=$("$BIN/criu" check 2>&1); then
    die "CRIU $("$BIN/criu" --version 2>/dev/null | head -1) cannot checkpoint on this kernel ($(uname -r)): $criu_out"
  fi
}

certs() {
  local p="$D/pki"
  mkdir -p "$p"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=cq-node-ca" \
    -keyout "$p/ca.key" -out "$p/ca.crt" 2>/dev/null
  # issue NAME SUBJECT [SANS]: a certificate signed by the node's CA.
  issue() {
    openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$p/$1.key" -out "$p/$1.csr" 2>/dev/null
    local ext="$p/$1.ext"
    if [ -n "${3:-}" ]; then
      printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" > "$ext"
    else
      printf 'extendedKeyUsage=clientAuth\n' > "$ext"
    fi
    openssl x509 -req -in "$p/$1.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -days 2 \
      -extfile "$ext" -out "$p/$1.crt" 2>/dev/null
  }
  issue apiserver "/CN=kube-apiserver" \
    "IP:127.0.0.1,IP:$NODE_IP,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  issue admin "/O=system:masters/CN=cq-node-admin"
  issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  issue kubelet "/O=system:nodes/CN=system:node:$NODE_NAME"
  openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
  openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  kubeconfig admin > "$D/admin.kubeconfig"
  kubeconfig kubelet > "$D/kubelet.kubeconfig"
}

kubeconfig() { # USER: a kubeconfig for the certificate USER.crt
  cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $NODE_NAME
  cluster: {server: "https://$NODE_IP:$API_PORT", certificate-authority: "$D/pki/ca.crt"}
users:
- name: $1
  user: {client-certificate: "$D/pki/$1.crt", client-key: "$D/pki/$1.key"}
contexts:
- name: $1@$NODE_NAME
  context: {cluster: $NODE_NAME, user: $1}
current-context: $1@$NODE_NAME
EOF
}

# The bridge carries the node's address, the pods' gateway, and the kubernetes Service's
# cluster IP, where svcproxy forwards to the apiserver (no kube-proxy runs here).
network() {
  ip link add "$BRIDGE" type bridge
  ip addr add "$NODE_IP/24" dev "$BRIDGE"
  ip addr add "$SERVICE_IP/32" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  mkdir -p "$D/cni/net.d" "$D/cni/ipam"
  cat > "$D/cni/net.d/10-$BRIDGE.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$BRIDGE",
  "plugins": [{
    "type": "bridge", "bridge": "$BRIDGE", "isGateway": false, "ipMasq": false,
    "ipam": {
      "type": "host-local", "dataDir": "$D/cni/ipam",
      "ranges": [[{"subnet": "$NODE_SUBNET.0/24", "gateway": "$NODE_IP"}]],
      "routes": [{"dst": "0.0.0.0/0", "gw": "$NODE_IP"}]
    }
  }]
}
EOF
}

control_plane() {
  start etcd "$TESTBIN/etcd" --data-dir "$D/etcd" --name "$NODE_NAME" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "$NODE_NAME=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync
  start kube-apiserver "$TESTBIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port "$API_PORT" --cert-dir "$D/pki/apiserver" \
    --tls-cert-file "$D/pki/apiserver.crt" --tls-private-key-file "$D/pki/apiserver.key" \
    --client-ca-file "$D/pki/ca.crt" --service-cluster-ip-range "$SERVICE_NET.0/24" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$D/pki/sa.pub" --service-account-signing-key-file "$D/pki/sa.key" \
    --kubelet-client-certificate "$D/pki/apiserver-kubelet-client.crt" --kubelet-client-key "$D/pki/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --allow-privileged=true --enable-aggregator-routing=true
  wait_for kube-apiserver 120 "$TESTBIN/kubectl" --kubeconfig "$D/admin.kubeconfig" get --raw /readyz
  start kube-controller-manager "$TESTBIN/kube-controller-manager" --kubeconfig "$D/admin.kubeconfig" \
    --leader-elect=false --use-service-account-credentials=false --secure-port=0 \
    --root-ca-file "$D/pki/ca.crt" --service-account-private-key-file "$D/pki/sa.key"
  start kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$D/admin.kubeconfig" --leader-elect=false \
    --bind-address 127.0.0.1 --secure-port "$SCHED_PORT"
  start svcproxy "$TOOLS/svcproxy" "$SERVICE_IP:443" "$NODE_IP:$API_PORT"
}

runtime_containerd() {
  local c="$D/containerd"
  mkdir -p "$c"
  RUNTIME_ENDPOINT="unix://$c/containerd.sock"
  cat > "$c/config.toml" <<EOF
version = 4
root = "$c/root"
state = "$c/state"
[plugins.'io.containerd.server.v1.grpc']
  address = "$c/containerd.sock"
[plugins.'io.containerd.server.v1.ttrpc']
  address = "$c/containerd.sock.ttrpc"
[plugins.'io.containerd.cri.v1.runtime']
  # No CAP_SYS_RESOURCE in some VMs: a negative oom_score_adj is clamped instead of failing.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_criu = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "$BIN/runc"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["$BIN"]
    conf_dir = "$D/cni/net.d"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "registry.k8s.io/pause:3.10.1"
EOF
  # CRIU is found on containerd's PATH (and so the shim's and runc's).
  start containerd env PATH="$BIN:$PATH" "$BIN/containerd" --config "$c/config.toml"
  wait_for containerd 60 "$BIN/ctr" --address "$c/containerd.sock" version
  images
  import_containerd "$D"/images/*.tar
}

# import_containerd TARBALL...: images into the CRI's namespace of the node's containerd.
import_containerd() {
  local img
  for img in "$@"; do
    "$BIN/ctr" --address "$D/containerd/containerd.sock" -n k8s.io images import "$img" >&2
  done
}

# The project's image (both static binaries on an empty base, user 65532 as in the Dockerfile)
# and the sandbox image, written as tarballs without Docker or a registry.
images() {
  local i="$D/images"
  mkdir -p "$i"
  (cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$i/" ./cmd/manager ./cmd/node-agent) >&2
  "$TOOLS/image" -o "$i/checkpoint-quota.tar" -tag "$NODE_IMAGE" -entrypoint /manager -user 65532:65532 \
    -file "/manager=$i/manager" -file "/node-agent=$i/node-agent"
  "$TOOLS/image" -o "$i/pause.tar" -tag registry.k8s.io/pause:3.10.1 -entrypoint /pause -user 65535:65535 \
    -file "/pause=$TOOLS/pause"
  # The workload runs as root: without CAP_SYS_RESOURCE (as in this VM), CRIU, root, cannot
  # read the rlimits of another user's process (prlimit), and the dump fails.
  "$TOOLS/image" -o "$i/workload.tar" -tag "$WORKLOAD_IMAGE" -entrypoint /workload \
    -file "/workload=$TOOLS/workload"
}

kubelet() {
  local k="$D/kubelet"
  mkdir -p "$k"
  cat > "$D/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: "$NODE_IP"
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$D/pki/ca.crt"}
authorization: {mode: Webhook}
containerRuntimeEndpoint: "$RUNTIME_ENDPOINT"
# cgroup v1 (hybrid) is still allowed, with the cgroupfs driver: PID 1 is no systemd here.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
podLogsDir: "$D/pod-logs"
resolvConf: ""
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
EOF
  start kubelet "$BIN/kubelet" --config "$D/kubelet.yaml" --kubeconfig "$D/kubelet.kubeconfig" \
    --root-dir "$k" --cert-dir "$k/pki" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --v=2
  wait_for kubelet 120 "$TESTBIN/kubectl" --kubeconfig "$D/admin.kubeconfig" wait --for=condition=Ready \
    "node/$NODE_NAME" --timeout=2s
}

# cgroup_hierarchies: on a cgroup v1 (hybrid) host, a mounted v1 hierarchy for every enabled
# controller that has none, as systemd mounts them on any v1 host (this machine's PID 1 mounts
# only some). A CRIU dump mounts every controller its own /proc/self/cgroup lists. When a
# hierarchy of such a controller (hugetlb) exists only for a moment (another dump's, or one
# unmounted and not yet destroyed), dumps running at once fail: "Unable to create the cgroup
# (hugetlb) file system: Device or resource busy". A hierarchy held for the node's life is
# shared by every dump's mount instead. A controller counts as held only when mounted where
# /proc/self/mountinfo shows it: /proc/cgroups also numbers hierarchies no longer mounted.
# docs/real-node.md, "cgroups". down unmounts what is listed in $D/cgroup-mounts.
cgroup_hierarchies() {
  [ "$(stat -f -c %T /sys/fs/cgroup)" = tmpfs ] || return 0 # cgroup v2 only: nothing to add
  local held name enabled
  # The super options of each mounted v1 hierarchy, such as rw,cpu: its controllers.
  held=$(sed -n 's/.* - cgroup [^ ]* \(.*\)$/,\1,/p' /proc/self/mountinfo)
  while read -r name _ _ enabled; do
    [ "$enabled" = 1 ] || continue
    case "$held" in *",$name,"*) continue ;; esac
    mkdir -p "/sys/fs/cgroup/$name"
    if mount -t cgroup -o "$name" cgroup "/sys/fs/cgroup/$name"; then
      echo "/sys/fs/cgroup/$name" >> "$D/cgroup-mounts"
    else
      rmdir "/sys/fs/cgroup/$name" 2>/dev/null || true
      log "could not mount the cgroup v1 controller $name at /sys/fs/cgroup/$name: checkpoints taken at once may fail (docs/real-node.md, \"cgroups\")"
    fi
  done < <(grep -v '^#' /proc/cgroups)
  [ ! -f "$D/cgroup-mounts" ] || log "mounted the cgroup v1 controllers that had no hierarchy: $(tr '\n' ' ' < "$D/cgroup-mounts")"
}

up() {
  [ ! -f "$envfile" ] || die "a node is up already ($envfile): hack/node/node.sh down stops it"
  BIN=$(RUNTIME=$RUNTIME "$here/build.sh")
  TESTBIN=$("$root/hack/testbin.sh")
  TOOLS="$BIN/../tools-$(sha256sum "$here"/tools/go.sum "$here"/tools/*/*.go | sha256sum | cut -c1-12)"
  if [ ! -d "$TOOLS" ]; then
    (cd "$here/tools" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$TOOLS.tmp/" ./... && mv "$TOOLS.tmp" "$TOOLS")
  fi
  preflight
  D=$(mktemp -d /tmp/cq-node.XXXXXX)
  # A start that fails half-way stops what it started.
  trap 'log "start failed; stopping what was started"; down' EXIT
  mkdir -p "$D/logs" "$D/pids" "$(dirname "$envfile")"
  read -r API_PORT ETCD_PORT ETCD_PEER_PORT SCHED_PORT KUBELET_PORT KUBELET_HEALTHZ_PORT <<< "$("$TOOLS/freeport" 6 | tr '\n' ' ')"
  cat > "$envfile" <<EOF
NODE_DIR=$D
RUNTIME=$RUNTIME
BRIDGE=$BRIDGE
NODE_NAME=$NODE_NAME
NODE_IP=$NODE_IP
KUBELET_PORT=$KUBELET_PORT
KUBECONFIG=$D/admin.kubeconfig
KUBECTL=$TESTBIN/kubectl
NODE_BIN=$BIN
NODE_TOOLS=$TOOLS
NODE_CA=$D/pki/ca.crt
KUBELET_CLIENT_CERT=$D/pki/apiserver-kubelet-client.crt
KUBELET_CLIENT_KEY=$D/pki/apiserver-kubelet-client.key
CHECKPOINT_DIR=$D/kubelet/checkpoints
AGENT_STATE_DIR=$D/agent-state
NODE_IMAGE=$NODE_IMAGE
WORKLOAD_IMAGE=$WORKLOAD_IMAGE
EOF
  log "starting in $D (logs in $D/logs)"
  # The kubelet sets these kernel tunables (protectKernelDefaults: false); down puts them back.
  local k
  for k in $KERNEL_TUNABLES; do echo "$k=$(sysctl -n "$k" 2>/dev/null)"; done > "$D/sysctl.saved"
  local t=$SECONDS
  cgroup_hierarchies
  certs
  network
  control_plane
  "runtime_$RUNTIME"
  echo "RUNTIME_ENDPOINT=$RUNTIME_ENDPOINT" >> "$envfile"
  kubelet
  trap - EXIT
  log "node $NODE_NAME Ready in $((SECONDS - t)) s; KUBECONFIG=$D/admin.kubeconfig"
}

# stop NAME [SECONDS]: SIGTERM, then SIGKILL after SECONDS (default 20).
stop() {
  local f="$D/pids/$1" pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + ${2:-20}))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

down() {
  [ -f "$envfile" ] || { log "no node is up ($envfile missing)"; return 0; }
  # shellcheck disable=SC1090
  . "$envfile"
  D=$NODE_DIR
  log "stopping the node in $D"
  stop kube-scheduler
  stop kube-controller-manager
  stop kubelet
  # Pods go through the runtime, which tears down their network and namespaces.
  if [ -f "$D/pids/$RUNTIME" ] && kill -0 "$(cat "$D/pids/$RUNTIME")" 2>/dev/null; then
    "$NODE_TOOLS/crirm" "$RUNTIME_ENDPOINT" || log "some pods could not be removed; their processes are killed below"
  fi
  stop "$RUNTIME"
  # Shims outlive containerd by design: end those of this node (their command line names its state).
  for p in /proc/[0-9]*; do
    if tr '\0' ' ' 2>/dev/null < "$p/cmdline" | grep -q -- "$D/"; then kill -KILL "${p#/proc/}" 2>/dev/null || true; fi
  done
  # Containers left by a runtime that could not remove them: their processes are in kubepods.
  local pid
  for pid in $(cat /sys/fs/cgroup/*/kubepods/cgroup.procs /sys/fs/cgroup/*/kubepods/*/cgroup.procs \
      /sys/fs/cgroup/*/kubepods/*/*/cgroup.procs /sys/fs/cgroup/*/kubepods/*/*/*/cgroup.procs 2>/dev/null | sort -u); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  stop svcproxy
  # The apiserver before etcd: it hangs on shutdown when etcd is gone first.
  stop kube-apiserver
  stop etcd
  # The kubelet bind-mounts its root directory, and volumes, netns and rootfs mounts may remain.
  local m
  for m in $(awk -v d="$D/" 'index($5, d) == 1 || $5 == substr(d, 1, length(d) - 1) { print $5 }' /proc/self/mountinfo | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
  done
  ip link show "$BRIDGE" >/dev/null 2>&1 && ip link del "$BRIDGE"
  # containerd's fixed paths (shim sockets, runc state), removed only when empty: another
  # containerd on the machine may use them.
  rmdir /run/containerd/runc/k8s.io /run/containerd/runc /run/containerd/s /run/containerd 2>/dev/null || true
  # The pods' cgroups (kubepods in each hierarchy), emptied once their processes are gone.
  find /sys/fs/cgroup -depth -type d -path '*/kubepods*' -exec rmdir {} + 2>/dev/null || true
  if [ -f "$D/cgroup-mounts" ]; then
    while IFS= read -r m; do umount "$m" && rmdir "$m" || log "could not unmount the cgroup hierarchy $m"; done < "$D/cgroup-mounts"
  fi
  if [ "$RUNTIME" = crio ]; then crio_down; fi
  if [ -f "$D/sysctl.saved" ]; then
    while IFS= read -r kv; do [ -z "${kv#*=}" ] || sysctl -qw "$kv" >/dev/null || log "could not restore $kv"; done < "$D/sysctl.saved"
  fi
  rm -rf "$D" "$envfile"
  log "stopped; nothing left mounted under $D"
}

# restart NAME: stops one component of the running node and starts it again, the same way
# (the node suite restarts the kubelet in the middle of a checkpoint stream).
restart() {
  [ -f "$envfile" ] || die "no node is up ($envfile missing)"
  # shellcheck disable=SC1090
  . "$envfile"
  D=$NODE_DIR
  [ -f "$D/pids/$1.cmd" ] || die "the node runs no component named '$1' (see $D/pids)"
  local cmd
  cmd=$(cat "$D/pids/$1.cmd")
  stop "$1"
  eval "start $1 $cmd"
  log "restarted $1 (pid $(cat "$D/pids/$1"))"
}

# import TARBALL...: images (ctr's tarball format, as hack/node/tools/image writes them) into the
# running node's runtime, such as cert-manager's (hack/node/cert-manager.sh) for its lane.
import_images() {
  [ -f "$envfile" ] || die "no node is up ($envfile missing)"
  # shellcheck disable=SC1090
  . "$envfile"
  D=$NODE_DIR BIN=$NODE_BIN
  "import_$RUNTIME" "$@"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  restart) restart "${2:?usage: $0 restart NAME}" ;;
  import) shift; import_images "$@" ;;
  *) echo "usage: $0 up|down|restart NAME|import TARBALL..." >&2; exit 2 ;;
esac
