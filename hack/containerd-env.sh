# shellcheck shell=bash
# containerd-env.sh: the settings of one test-bed runtime, chosen by RUNTIME.
# Sourced by containerd-up.sh and containerd-down.sh after lib.sh.
#   RUNTIME=containerd    (default) containerd 2.x built by hack/build.sh; has GetContainerEvents
#   RUNTIME=containerd16  Debian's containerd 1.6; no GetContainerEvents
# Everything a runtime owns (root, state, socket, shim sockets, CNI config and
# IPAM leases, netns bind mounts, logs, pidfile) lives under its CRI_DIR.
RUNTIME="${RUNTIME:-containerd}"
case "$RUNTIME" in
  containerd)
    CRI_DIR="$NODEKIT_STATE/cri"; CTRD_BIN_DIR="$CONTAINERD_BIN"
    CNI_NETWORK=nodekit-cri; CNI_BRIDGE=nk-cri; CNI_SUBNET=10.89.0.0/16 ;;
  containerd16)
    CRI_DIR="$NODEKIT_STATE/cri16"; CTRD_BIN_DIR=/usr/bin
    CNI_NETWORK=nodekit-cri16; CNI_BRIDGE=nk-cri16; CNI_SUBNET=10.88.0.0/16 ;;
  *) die "RUNTIME=$RUNTIME: want containerd or containerd16" ;;
esac
PAUSE_IMAGE="${PAUSE_IMAGE:-registry.k8s.io/pause:3.10.2}"
BUSYBOX_IMAGE="${BUSYBOX_IMAGE:-docker.io/library/busybox:1.36}"
CNI_BIN_DIR="${CNI_BIN_DIR:-/usr/lib/cni}"
SOCK="$CRI_DIR/containerd.sock"
PIDFILE="$CRI_DIR/containerd.pid"
CTR=("$CTRD_BIN_DIR/ctr" --address "$SOCK" --namespace k8s.io)
CRICTL=(crictl --config /dev/null --runtime-endpoint "unix://$SOCK" --image-endpoint "unix://$SOCK" --timeout 30s)
# The runtime's own shim must come first on containerd's PATH.
export PATH="$CTRD_BIN_DIR:$PATH"
