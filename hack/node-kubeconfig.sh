#!/usr/bin/env bash
# node-kubeconfig.sh NODE: mint a kubelet client cert for NODE
# (CN=system:node:NODE, O=system:nodes, so the Node authorizer and
# NodeRestriction apply) and print the path of its kubeconfig.
# Go tests use testenv.NodeRESTConfig instead.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
NODE="${1:?usage: node-kubeconfig.sh NODE}"
PKI="$NODEKIT_STATE/cp/pki"; name="node-$NODE"
[ -f "$PKI/ca.key" ] || die "no CA in $PKI: run hack/controlplane-up.sh"
openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' > "$PKI/$name.ext"
openssl req -new -key "$PKI/$name.key" -subj "/O=system:nodes/CN=system:node:$NODE" 2>/dev/null |
  openssl x509 -req -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial -days 365 -sha256 \
    -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
rm -f "$PKI/$name.ext"
"$NODEKIT_ROOT/hack/kubeconfig.sh" "$name" "$NODEKIT_STATE/cp/$name.kubeconfig"
echo "$NODEKIT_STATE/cp/$name.kubeconfig"
