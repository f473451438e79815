#!/usr/bin/env bash
# containerd-up.sh: start a private containerd with the CRI plugin, CNI
# (bridge + host-local + portmap + loopback) and the locally built pause and
# busybox images. RUNTIME=containerd16 starts Debian's containerd 1.6 instead
# (see containerd-env.sh). Idempotent: if it runs, only the images are checked.
# Stop with containerd-down.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/containerd-env.sh"
need_root
[ "${#SOCK}" -lt 100 ] || die "socket path too long for AF_UNIX: $SOCK"
"$NODEKIT_ROOT/hack/install-deps.sh"
[ "$RUNTIME" = containerd16 ] || "$NODEKIT_ROOT/hack/build.sh" containerd
for p in bridge host-local portmap loopback; do
  [ -x "$CNI_BIN_DIR/$p" ] || die "CNI plugin $CNI_BIN_DIR/$p missing"
done
RUNC="$(command -v runc)" || die "runc not found"
mkdir -p "$CRI_DIR"/{root,state,opt,tmp,cni/net.d,cni/ipam,runc}

# Without CAP_SYS_RESOURCE a process may not lower its oom_score_adj, and runc
# fails every sandbox with "can't get final child's PID from pipe: EOF" unless
# containerd clamps the kubelet's negative scores (restrict_oom_score_adj).
if sh -c 'echo -999 > /proc/self/oom_score_adj' 2>/dev/null; then RESTRICT_OOM=false; else RESTRICT_OOM=true; fi

# Shim sockets: containerd 2.x honours socket_dir only up to 38 characters.
SHIM_SOCKET_DIR="$CRI_DIR/s"
[ "${#SHIM_SOCKET_DIR}" -le 38 ] || SHIM_SOCKET_DIR=""

write_config_v3() { # containerd 2.x
  cat <<TOML
version = 3
root = "$CRI_DIR/root"
state = "$CRI_DIR/state"
temp = "$CRI_DIR/tmp"
imports = []
disabled_plugins = ["io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs", "io.containerd.nri.v1.nri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[metrics]
  address = ""
[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  pinned_images.sandbox = "$PAUSE_IMAGE"
  registry.config_path = "$NODEKIT_STATE/registry/certs.d"
[plugins.'io.containerd.cri.v1.runtime']
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = $RESTRICT_OOM
  netns_mounts_under_state_dir = true
  disable_hugetlb_controller = true
  tolerate_missing_hugetlb_controller = true
  cdi_spec_dirs = []
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      sandboxer = "podsandbox"
      options = { BinaryName = "$RUNC", SystemdCgroup = false, Root = "$CRI_DIR/runc" }
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["$CNI_BIN_DIR"]
    conf_dir = "$CRI_DIR/cni/net.d"
    max_conf_num = 1
[plugins.'io.containerd.internal.v1.opt']
  path = "$CRI_DIR/opt"
[plugins.'io.containerd.shim.v1.manager']
  socket_dir = "$SHIM_SOCKET_DIR"
TOML
}

write_config_v2() { # containerd 1.6
  cat <<TOML
version = 2
root = "$CRI_DIR/root"
state = "$CRI_DIR/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = $RESTRICT_OOM
  netns_mounts_under_state_dir = true
  disable_hugetlb_controller = true
  tolerate_missing_hugetlb_controller = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      options = { BinaryName = "$RUNC", SystemdCgroup = false, Root = "$CRI_DIR/runc" }
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$CRI_DIR/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$NODEKIT_STATE/registry/certs.d"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CRI_DIR/opt"
TOML
}

# The CRI plugin adds the loopback network itself; bridge 1.1 refuses
# hairpinMode together with promiscMode, so only hairpin is set.
write_cni_config() {
  cat <<JSON
{
  "cniVersion": "0.4.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {"type": "bridge", "bridge": "$CNI_BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$CRI_DIR/cni/ipam",
              "ranges": [[{"subnet": "$CNI_SUBNET"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
}

import_images() {
  PAUSE_IMAGE="$PAUSE_IMAGE" BUSYBOX_IMAGE="$BUSYBOX_IMAGE" "$NODEKIT_ROOT/hack/images.sh" "$NODEKIT_STATE/images"
  local have img tar
  # Capture first: `ctr | grep -q` under pipefail fails at random on SIGPIPE.
  have="$("${CTR[@]}" images ls -q 2>/dev/null)" || die "ctr images ls failed"
  for img in "$PAUSE_IMAGE=pause.tar" "$BUSYBOX_IMAGE=busybox.tar"; do
    tar="$NODEKIT_STATE/images/${img#*=}"; img="${img%%=*}"
    if ! grep -qxF -- "$img" <<< "$have"; then
      log "importing $img"
      "${CTR[@]}" images import "$tar" >/dev/null 2>&1 || die "ctr images import $tar failed"
    fi
  done
}

if pid="$(pid_of "$PIDFILE" "$CTRD_BIN_DIR/containerd")"; then
  log "$RUNTIME already running (pid $pid) on $SOCK"
  import_images
  exit 0
fi

# A runtime that died (SIGKILL, reboot) leaves mounts, a bridge, nat rules
# and leases behind; clear them before starting a new one.
"$NODEKIT_ROOT/hack/containerd-down.sh" >/dev/null 2>&1 || true
if [ "$RUNTIME" = containerd16 ]; then write_config_v2; else write_config_v3; fi > "$CRI_DIR/config.toml"
write_cni_config > "$CRI_DIR/cni/net.d/10-$CNI_NETWORK.conflist"
echo "CNI_NETWORK=$CNI_NETWORK CNI_BRIDGE=$CNI_BRIDGE" > "$CRI_DIR/up.env"
rm -f "$SOCK" "$SOCK.ttrpc"
t0="$(now_ms)"
start_daemon "$PIDFILE" "$CRI_DIR/containerd.log" "$CTRD_BIN_DIR/containerd" --config "$CRI_DIR/config.toml"
wait_until 30 "$RUNTIME CRI" "$(cat "$PIDFILE")" "${CRICTL[@]}" version
log "$RUNTIME pid $(cat "$PIDFILE") answers CRI Version after $(( $(now_ms) - t0 )) ms on $SOCK (restrict_oom_score_adj=$RESTRICT_OOM)"
import_images
