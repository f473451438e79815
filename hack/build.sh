#!/usr/bin/env bash
# build.sh: build the test bed's binaries from the Go module proxy into
# NODEKIT_CACHE, each keyed by its version; a second run builds nothing.
#   containerd, ctr, containerd-shim-runc-v2 (~3 min cold)
#   crictl                                   (~1 min cold)
#   etcd                                     (<1 min cold)
#   kube-apiserver, kube-controller-manager  (~10 min cold; the Go build cache needs ~4 GB)
# Usage: build.sh [containerd|controlplane|all]   (default all)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
what="${1:-all}"
# One build at a time: concurrent callers wait, then find the stamps.
mkdir -p "$NODEKIT_CACHE"
exec 9>"$NODEKIT_CACHE/.build.lock"
flock 9

build_containerd() {
  local pkg=github.com/containerd/containerd/v2 v="$CONTAINERD_VERSION"
  local ld="-X $pkg/version.Version=$v -X $pkg/version.Revision=modproxy -X $pkg/version.Package=$pkg"
  # btrfs needs C headers we do not install; the shim is static as upstream builds it.
  go_build_cached "$CONTAINERD_BIN/.built" "$NODEKIT_ROOT" bash -c "
    set -e
    GOBIN='$CONTAINERD_BIN' go install -trimpath -tags 'no_btrfs urfave_cli_no_docs' -ldflags '$ld' \
      '$pkg/cmd/containerd@$v' '$pkg/cmd/ctr@$v'
    GOBIN='$CONTAINERD_BIN' CGO_ENABLED=0 go install -trimpath -tags 'no_btrfs urfave_cli_no_docs no_grpc' \
      -ldflags '$ld -extldflags -static' '$pkg/cmd/containerd-shim-runc-v2@$v'"
  go_build_cached "$CRICTL_BIN/.built" "$NODEKIT_ROOT" \
    env GOBIN="$CRICTL_BIN" go install -trimpath "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
}

build_controlplane() {
  go_build_cached "$ETCD_BIN/.built" "$NODEKIT_ROOT/hack/controlplane/etcd" \
    env CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$ETCD_BIN/etcd" go.etcd.io/etcd/server/v3
  local v=k8s.io/component-base/version minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
  local ld="-s -w -X $v.gitVersion=$KUBERNETES_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
  local c
  for c in kube-apiserver kube-controller-manager; do
    go_build_cached "$KUBE_BIN/.built-$c" "$NODEKIT_ROOT/hack/controlplane" \
      env CGO_ENABLED=0 go build -trimpath -ldflags "$ld" -o "$KUBE_BIN/$c" "k8s.io/kubernetes/cmd/$c"
  done
}

case "$what" in
  containerd) build_containerd ;;
  controlplane) build_controlplane ;;
  all) build_containerd; build_controlplane ;;
  *) die "usage: build.sh [containerd|controlplane|all]" ;;
esac
