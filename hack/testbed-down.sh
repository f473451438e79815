#!/usr/bin/env bash
# testbed-down.sh [--purge]: stop everything testbed-up.sh started and remove
# leftover test namespaces; --purge also deletes the state (not the build cache).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_root
"$NODEKIT_ROOT/hack/controlplane-down.sh" "$@"
"$NODEKIT_ROOT/hack/registry-down.sh" "$@"
RUNTIME=containerd16 "$NODEKIT_ROOT/hack/containerd-down.sh" "$@"
RUNTIME=containerd "$NODEKIT_ROOT/hack/containerd-down.sh" "$@"
"$NODEKIT_ROOT/hack/netns-clean.sh"
exit 0
