#!/usr/bin/env bash
# containerd-down.sh [--purge]: stop what containerd-up.sh started for RUNTIME
# (see containerd-env.sh) and leave nothing of it behind:
#   1. every pod sandbox is stopped and removed through the CRI (CNI DEL runs);
#   2. the containerd of the pidfile, and only it, gets SIGTERM (SIGKILL after 15 s);
#   3. leftover shims started for our socket are ended, by pid;
#   4. every mount under the runtime's state dir is unmounted, deepest first;
#   5. the CNI bridge, nat rules tagged with our CNI network and host-local
#      leases (left when containerd died without CNI DEL) are removed;
#   6. empty pod cgroups under /nodekit and /k8s.io (runc removes only leaves);
#   --purge also deletes the state dir (images are kept otherwise).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/containerd-env.sh"
need_root
PURGE=0; [ "${1:-}" = --purge ] && PURGE=1
[ -d "$CRI_DIR" ] || { log "$CRI_DIR does not exist; nothing to do"; exit 0; }

if pid="$(pid_of "$PIDFILE" "$CTRD_BIN_DIR/containerd")"; then
  if pods="$("${CRICTL[@]}" pods -q 2>/dev/null)"; then
    for p in $pods; do "${CRICTL[@]}" stopp "$p" >/dev/null 2>&1 || log "stopp $p failed"; done
    for p in $pods; do "${CRICTL[@]}" rmp -f "$p" >/dev/null 2>&1 || log "rmp $p failed"; done
  fi
  stop_pid "$RUNTIME" "$pid"
else
  log "$RUNTIME is not running for $CRI_DIR"
fi
rm -f "$PIDFILE" "$SOCK" "$SOCK.ttrpc"

# Shims carry "-address <our socket>" in their argv.
our_shims() {
  local p cmd
  for p in /proc/[0-9]*; do
    cmd="$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null)" || continue
    if [[ "$cmd" == *containerd-shim*" -address $SOCK "* || "$cmd" == *containerd-shim*" -address $SOCK" ]]; then
      echo "${p#/proc/}"
    fi
  done
}
shims="$(our_shims)"
if [ -n "$shims" ]; then
  # A shim's containers outlive it: kill them through runc first.
  for c in "$CRI_DIR"/runc/k8s.io/*/; do
    [ -d "$c" ] || continue
    runc --root "$CRI_DIR/runc/k8s.io" kill --all "$(basename "$c")" KILL >/dev/null 2>&1
    runc --root "$CRI_DIR/runc/k8s.io" delete --force "$(basename "$c")" >/dev/null 2>&1
  done
  kill -TERM $shims 2>/dev/null; sleep 1
  for s in $shims; do [ -d "/proc/$s" ] && kill -KILL "$s" 2>/dev/null; done
  log "ended leftover shims: $shims"
fi

for _ in 1 2 3; do
  mps="$(awk -v d="$CRI_DIR/" 'index($5, d) == 1 {print length($5), $5}' /proc/self/mountinfo | sort -rn | cut -d' ' -f2-)"
  [ -z "$mps" ] && break
  while IFS= read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done <<< "$mps"
done
left="$(awk -v d="$CRI_DIR/" 'index($5, d) == 1' /proc/self/mountinfo | wc -l)"
[ "$left" = 0 ] || log "WARNING: $left mounts still under $CRI_DIR"

ip link show "$CNI_BRIDGE" >/dev/null 2>&1 && ip link del "$CNI_BRIDGE" && log "deleted bridge $CNI_BRIDGE"

# Rules the bridge (ipMasq) and portmap plugins made for our pods carry the
# comment 'name: "<network>" id: "<sandbox>"'; with our containerd down, any
# left is stale. Delete the jumps to them, then the per-pod chains.
tag="name: \"$CNI_NETWORK\" id:"
nat="$(iptables -t nat -S 2>/dev/null)"
stale_chains="$(grep -F -- "name: \\\"$CNI_NETWORK\\\" id:" <<< "$nat" | grep -oE -- '-j CNI-[A-Za-z0-9-]+' | awk '{print $2}' | grep -v '^CNI-HOSTPORT-' | sort -u)"
n=0
for parent in POSTROUTING CNI-HOSTPORT-DNAT CNI-HOSTPORT-MASQ CNI-HOSTPORT-SETMARK; do
  iptables -t nat -S "$parent" >/dev/null 2>&1 || continue
  for num in $(iptables -t nat -L "$parent" -n --line-numbers | grep -F -- "$tag" | awk '{print $1}' | sort -rn); do
    iptables -t nat -D "$parent" "$num" && n=$((n + 1))
  done
done
for ch in $stale_chains; do iptables -t nat -F "$ch" 2>/dev/null; iptables -t nat -X "$ch" 2>/dev/null; done
[ "$n" -gt 0 ] && log "removed $n stale nat rule(s) of CNI network $CNI_NETWORK"
if [ -d "$CRI_DIR/cni/ipam/$CNI_NETWORK" ]; then
  find "$CRI_DIR/cni/ipam/$CNI_NETWORK" -type f ! -name lock ! -name 'last_reserved_ip*' -delete
fi

# portmap's shared chains, once no DNAT entry is left in them.
if iptables -t nat -S CNI-HOSTPORT-DNAT >/dev/null 2>&1 &&
   ! iptables -t nat -S CNI-HOSTPORT-DNAT | grep -q '^-A'; then
  iptables -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT 2>/dev/null
  iptables -t nat -D OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT 2>/dev/null
  iptables -t nat -D POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ 2>/dev/null
  for ch in CNI-HOSTPORT-DNAT CNI-HOSTPORT-MASQ CNI-HOSTPORT-SETMARK; do
    iptables -t nat -F "$ch" 2>/dev/null; iptables -t nat -X "$ch" 2>/dev/null
  done
fi

# rmdir removes only empty cgroups, so a live one is never touched.
for cg in nodekit k8s.io; do
  for ctl in /sys/fs/cgroup/*/"$cg" /sys/fs/cgroup/"$cg"; do
    [ -d "$ctl" ] && find "$ctl" -depth -type d -exec rmdir {} + 2>/dev/null
  done
done

if [ "$PURGE" = 1 ]; then
  [ "$left" = 0 ] || die "not purging $CRI_DIR: mounts remain"
  rm -rf "$CRI_DIR" && log "purged $CRI_DIR"
fi
log "$RUNTIME down"
exit 0
