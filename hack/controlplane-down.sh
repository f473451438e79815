#!/usr/bin/env bash
# controlplane-down.sh [--purge]: stop what controlplane-up.sh started, by
# pidfile only; --purge also removes the state (etcd data, certs).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
CP="$NODEKIT_STATE/cp"
for c in kube-controller-manager kube-apiserver; do
  if pid="$(pid_of "$CP/$c.pid" "$KUBE_BIN/$c")"; then stop_pid "$c" "$pid"; fi
  rm -f "$CP/$c.pid"
done
if pid="$(pid_of "$CP/etcd.pid" "$ETCD_BIN/etcd")"; then stop_pid etcd "$pid"; fi
rm -f "$CP/etcd.pid"
if [ "${1:-}" = --purge ]; then rm -rf "$CP" && log "purged $CP"; fi
exit 0
