#!/usr/bin/env bash
# testbed-up.sh: bring up every real component the tests use — containerd 2.x,
# Debian's containerd 1.6, the image registries, etcd + kube-apiserver —
# installing and building what is missing first. Idempotent. Stop with
# testbed-down.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root
t0="$(now_ms)"
"$NODEKIT_ROOT/hack/install-deps.sh"
"$NODEKIT_ROOT/hack/build.sh" all
RUNTIME=containerd "$NODEKIT_ROOT/hack/containerd-up.sh"
RUNTIME=containerd16 "$NODEKIT_ROOT/hack/containerd-up.sh"
"$NODEKIT_ROOT/hack/registry-up.sh"
"$NODEKIT_ROOT/hack/controlplane-up.sh"
log "test bed up in $(( ($(now_ms) - t0) / 1000 )) s (state in $NODEKIT_STATE)"
