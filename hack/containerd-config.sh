#!/usr/bin/env bash
# containerd-config.sh [DIR]: print the config.toml of a test-bed runtime
# (RUNTIME, see containerd-env.sh) whose root, state, socket
# (DIR/containerd.sock), runc root, CNI config and shim sockets are under DIR
# (default: the runtime's own CRI_DIR). containerd-up.sh writes it for the
# shared runtimes; cri's runtime-gone test for a private containerd.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/containerd-env.sh"
if [ $# -gt 0 ]; then CRI_DIR="$1"; SOCK="$CRI_DIR/containerd.sock"; fi
RUNC="$(command -v runc)" || die "runc not found"

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

if [ "$RUNTIME" = containerd16 ]; then write_config_v2; else write_config_v3; fi
