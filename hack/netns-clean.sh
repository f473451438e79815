#!/usr/bin/env bash
# netns-clean.sh: remove network namespaces that tests made (internal/testenv
# names them nk-*) and that a killed test run left behind. Tests remove their
# own namespaces when they end; this is for runs that did not.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^nk-'); do
  ip netns delete "$ns" && log "deleted netns $ns"
done
exit 0
