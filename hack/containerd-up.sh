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
mkdir -p "$CRI_DIR"/{root,state,opt,tmp,cni/net.d,cni/ipam,runc}

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
"$NODEKIT_ROOT/hack/containerd-config.sh" > "$CRI_DIR/config.toml"
write_cni_config > "$CRI_DIR/cni/net.d/10-$CNI_NETWORK.conflist"
echo "CNI_NETWORK=$CNI_NETWORK CNI_BRIDGE=$CNI_BRIDGE" > "$CRI_DIR/up.env"
rm -f "$SOCK" "$SOCK.ttrpc"
t0="$(now_ms)"
start_daemon "$PIDFILE" "$CRI_DIR/containerd.log" "$CTRD_BIN_DIR/containerd" --config "$CRI_DIR/config.toml"
wait_until 30 "$RUNTIME CRI" "$(cat "$PIDFILE")" "${CRICTL[@]}" version
log "$RUNTIME pid $(cat "$PIDFILE") answers CRI Version after $(( $(now_ms) - t0 )) ms on $SOCK ($(grep -o "restrict_oom_score_adj = [a-z]*" "$CRI_DIR/config.toml"))"
import_images
