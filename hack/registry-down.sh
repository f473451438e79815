#!/usr/bin/env bash
# registry-down.sh [--purge]: stop the registries registry-up.sh started, by
# pidfile only. The pushed image, the password and the hosts.toml files
# stay for the next start; --purge removes $NODEKIT_STATE/registry.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
REG="$NODEKIT_STATE/registry"
for r in registry registry-auth; do
  if pid="$(pid_of "$REG/$r.pid" /usr/bin/docker-registry)"; then stop_pid "$r" "$pid"; fi
  rm -f "$REG/$r.pid"
done
if [ "${1:-}" = --purge ]; then rm -rf "$REG" && log "purged $REG"; fi
exit 0
