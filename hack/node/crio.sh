# CRI-O as the node's runtime (RUNTIME=crio): sourced by hack/node/build.sh, which calls
# build_crio, and by hack/node/node.sh, which calls runtime_crio and crio_down. Not a script
# of its own. docs/real-node.md, "CRI-O", says why each setting is what it is.
#
#   CRIO_VERSION   default: v1.36.3 (github.com/cri-o/cri-o from the module proxy)

CRIO_VERSION=${CRIO_VERSION:-v1.36.3}
# The build tags of the issue's trial: no ostree, OpenPGP in Go (no gpgme), seccomp, neither
# the btrfs nor the devicemapper graph driver (the node uses overlay).
CRIO_TAGS="containers_image_ostree_stub containers_image_openpgp seccomp exclude_graphdriver_btrfs btrfs_noversion exclude_graphdriver_devicemapper"

# build_crio (for build.sh's build_component): crio itself, pinns (C, static), and copyimg,
# CRI-O's own image copier (test/copyimg), which writes the node's image tarballs into CRI-O's
# storage with the same containers/storage CRI-O reads it with.
build_crio() {
  need_debs libseccomp-dev pkg-config gcc libc6-dev make
  (
    module_copy "github.com/cri-o/cri-o@$CRIO_VERSION" "$work/src"
    cd "$work/src"
    CGO_ENABLED=1 nice -n 19 go build -trimpath -tags "$CRIO_TAGS" -ldflags "-s -w" -o "$out/crio" ./cmd/crio
    CGO_ENABLED=1 nice -n 19 go build -trimpath -tags "$CRIO_TAGS" -ldflags "-s -w" -o "$out/copyimg" ./test/copyimg
    nice -n 19 make -C pinns
    install -m 0755 bin/pinns "$out/pinns"
  ) >&2
}

# runtime_crio (for node.sh's up): CRI-O with runc (through oomclamp) and Debian's conmon,
# every path of its own under $D/crio, the node's images written into its storage first.
runtime_crio() {
  local c="$D/crio"
  mkdir -p "$c/conf.d" "$c/run" "$c/tmp"
  RUNTIME_ENDPOINT="unix://$c/crio.sock"
  crio_hugetlb
  # containers/image (copyimg's and CRI-O's) keeps a blob cache in /var/lib/containers/cache,
  # a fixed path for root; down removes it where the node made it.
  [ -e /var/lib/containers ] || touch "$D/var-lib-containers.made"
  # CRI-O has no setting like containerd's restrict_oom_score_adj: runc goes through oomclamp
  # (hack/node/tools/oomclamp), which raises a negative oomScoreAdj to 0 before runc starts.
  printf '#!/bin/sh\nexec %q %q "$@"\n' "$TOOLS/oomclamp" "$BIN/runc" > "$c/runc"
  chmod 0755 "$c/runc"
  # The signature policy is copyimg's alone: CRI-O has none (it pulls nothing here), since
  # with one it refuses to restore from a checkpoint image (server/container_restore.go).
  echo '{"default": [{"type": "insecureAcceptAnything"}]}' > "$c/policy.json"
  # A short name (cq-workload:node) resolves to docker.io, as on a stock CRI-O node; the
  # images are found in the storage, never pulled.
  echo 'unqualified-search-registries = ["docker.io"]' > "$c/registries.conf"
  cat > "$c/crio.conf" <<EOF
[crio]
root = "$c/storage"
runroot = "$c/run/storage"
storage_driver = "overlay"
log_dir = "$c/pod-logs"
version_file = "$c/run/version"
version_file_persist = "$c/version"
clean_shutdown_file = "$c/clean.shutdown"
[crio.api]
listen = "$c/crio.sock"
stream_address = "127.0.0.1"
stream_port = "0"
[crio.runtime]
default_runtime = "runc"
cgroup_manager = "cgroupfs"
container_exits_dir = "$c/run/exits"
container_attach_socket_dir = "$c/run"
namespaces_dir = "$c/run/ns"
pinns_path = "$BIN/pinns"
enable_criu_support = true
hooks_dir = []
default_mounts_file = ""
irqbalance_config_file = ""
irqbalance_config_restore_file = "disable"
[crio.runtime.runtimes.runc]
runtime_path = "$c/runc"
runtime_type = "oci"
runtime_root = "$c/run/runc"
monitor_path = "$BIN/conmon"
monitor_cgroup = "pod"
monitor_env = ["PATH=$BIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
[crio.image]
pause_image = "registry.k8s.io/pause:3.10.1"
pause_command = "/pause"
pinned_images = ["registry.k8s.io/pause:3.10.1"]
big_files_temporary_dir = "$c/tmp"
namespaced_auth_dir = "$c/auth"
signature_policy_dir = "$c/policies"
[crio.network]
network_dir = "$D/cni/net.d"
plugin_dirs = ["$BIN"]
[crio.metrics]
enable_metrics = false
[crio.nri]
enable_nri = false
EOF
  images
  import_crio "$D"/images/*.tar
  # CRIU is found on CRI-O's PATH (runc, which CRI-O runs, looks for it there).
  start crio env PATH="$BIN:$PATH" "$BIN/crio" --config "$c/crio.conf" --config-dir "$c/conf.d" \
    --registries-conf "$c/registries.conf" --log-level info
  wait_for crio 60 test -S "$c/crio.sock"
}

# import_crio TARBALL... (node.sh's import too): each tarball into CRI-O's storage under the
# name it carries (its manifest's RepoTags), with CRI-O's own copier; containers/storage locks
# its stores, so this works while CRI-O runs as well as before.
import_crio() {
  local c="$D/crio" img name
  for img in "$@"; do
    name=$(tar -xOf "$img" manifest.json | sed -n 's/.*"RepoTags":\["\([^"]*\)".*/\1/p')
    [ -n "$name" ] || die "$img names no image (its manifest.json has no RepoTags)"
    "$BIN/copyimg" --root "$c/storage" --runroot "$c/run/storage" --storage-driver overlay \
      --signature-policy "$c/policy.json" --image-name "$name" --import-from "docker-archive:$img" >&2 \
      || die "could not write $img into CRI-O's storage as $name"
  done
}

# crio_hugetlb: this VM lists the cgroup v1 hugetlb controller in /proc/cgroups but mounts no
# hierarchy for it; runc then fails every CRI-O container (`cannot set hugetlb limit`: the
# kubelet sends hugepage limits, which CRI-O passes on). The node mounts one, and down
# unmounts it. Nothing to do on cgroup v2, or where the hierarchy is mounted.
crio_hugetlb() {
  [ -d /sys/fs/cgroup/memory ] || return 0
  awk '$1 == "hugetlb" && $4 == 1 { found = 1 } END { exit !found }' /proc/cgroups || return 0
  grep -qE '^[^ ]+ [^ ]+ cgroup [^ ]*hugetlb' /proc/mounts && return 0
  mkdir -p /sys/fs/cgroup/hugetlb
  mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb || die "could not mount the cgroup v1 hugetlb hierarchy CRI-O's containers need"
  echo /sys/fs/cgroup/hugetlb > "$D/hugetlb.mounted"
}

# crio_down (for node.sh's down, after the runtime and the pods' cgroups are gone): unmounts
# the hugetlb hierarchy the node mounted, and removes CRI-O's fixed directories when empty and
# containers/image's blob cache when the node made it.
crio_down() {
  if [ -f "$D/hugetlb.mounted" ]; then
    local h
    h=$(cat "$D/hugetlb.mounted")
    find "$h" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
    umount "$h" 2>/dev/null || umount -l "$h" || log "could not unmount $h"
    rmdir "$h" 2>/dev/null || true
  fi
  rmdir /var/run/crio/seccomp /var/run/crio 2>/dev/null || true
  if [ -f "$D/var-lib-containers.made" ]; then
    rm -f /var/lib/containers/cache/blob-info-cache-v1.sqlite
    rmdir /var/lib/containers/cache /var/lib/containers 2>/dev/null || true
  fi
}
