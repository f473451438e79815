#!/usr/bin/env bash
# install-deps.sh: the Debian packages the test bed runs beside what it builds.
# Idempotent: installs only what is missing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root

pkgs=(runc containernetworking-plugins iptables nftables conntrack busybox-static
      docker-registry containerd jq curl openssl iproute2 util-linux tar coreutils
      procps ca-certificates iputils-ping)
missing=()
for p in "${pkgs[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
[ "${#missing[@]}" = 0 ] && exit 0
log "apt-get install ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Debian's containerd (1.6, the second runtime) ships a service; policy-rc.d
# keeps it from starting a system containerd on hosts with an init system.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
