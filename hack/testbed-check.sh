#!/usr/bin/env bash
# testbed-check.sh: prove the test bed's scripts on this machine, and leave
# it up: starting twice changes nothing; a containerd killed with a pod
# running is restarted cleanly; stopping ends exactly the started processes
# and leaves no mount, bridge, nat rule or namespace behind; starting again
# works. Run by `make test`.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root
H="$NODEKIT_ROOT/hack"
fail() { die "testbed-check: $*"; }
pids() { cat "$NODEKIT_STATE"/cri/containerd.pid "$NODEKIT_STATE"/cri16/containerd.pid \
             "$NODEKIT_STATE"/registry/registry.pid "$NODEKIT_STATE"/registry/registry-auth.pid \
             "$NODEKIT_STATE"/cp/etcd.pid "$NODEKIT_STATE"/cp/kube-apiserver.pid 2>/dev/null | sort; }
mounts() { awk -v d="$NODEKIT_STATE/" 'index($5, d) == 1' /proc/self/mountinfo | wc -l; }
tagged_rules() { iptables -t nat -S | grep -c 'nodekit-cri' || true; }

"$H/testbed-up.sh"
before="$(pids)"
"$H/testbed-up.sh" 2>/dev/null
[ "$(pids)" = "$before" ] || fail "a second testbed-up.sh restarted components"
log "second start: same processes"

# A pod, then SIGKILL: no CNI DEL runs, the shim and mounts stay behind.
sock="$NODEKIT_STATE/cri/containerd.sock"
C=(crictl --config /dev/null --runtime-endpoint "unix://$sock" --timeout 30s)
cfg="$(mktemp)"; trap 'rm -f "$cfg"' EXIT
echo '{"metadata":{"name":"testbed-check","namespace":"default","uid":"testbed-check-'"$$"'"},"log_directory":"/tmp"}' > "$cfg"
"${C[@]}" runp "$cfg" >/dev/null || fail "crictl runp"
[ "$(tagged_rules)" -gt 0 ] || fail "no CNI nat rule for the pod"
kill -KILL "$(cat "$NODEKIT_STATE/cri/containerd.pid")"; sleep 0.2
"$H/containerd-up.sh" 2>/dev/null
"${C[@]}" version >/dev/null || fail "containerd did not come back"
[ "$(tagged_rules)" = 0 ] || fail "stale CNI nat rules after restarting a killed containerd"
log "killed containerd: restarted clean"

"$H/testbed-down.sh" 2>/dev/null
for p in $before $(pids); do
  [ -d "/proc/$p" ] && fail "pid $p still runs after testbed-down.sh"
done
[ "$(mounts)" = 0 ] || fail "$(mounts) mounts left under $NODEKIT_STATE"
[ "$(tagged_rules)" = 0 ] || fail "CNI nat rules left"
ip link show nk-cri >/dev/null 2>&1 && fail "bridge nk-cri left"
ip link show nk-cri16 >/dev/null 2>&1 && fail "bridge nk-cri16 left"
pgrep -f "containerd-shim.*-address $NODEKIT_STATE/" >/dev/null && fail "shims left"
log "stop: nothing left running or mounted"

"$H/testbed-up.sh" 2>/dev/null
log "testbed-check passed; the test bed is up"
