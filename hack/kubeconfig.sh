#!/usr/bin/env bash
# kubeconfig.sh NAME OUT: write a kubeconfig for the test bed's apiserver that
# authenticates with the client cert $NODEKIT_STATE/cp/pki/NAME.{crt,key}.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
NAME="${1:?usage: kubeconfig.sh NAME OUT}"; OUT="${2:?usage: kubeconfig.sh NAME OUT}"
PKI="$NODEKIT_STATE/cp/pki"
b64() { base64 -w0 < "$1"; }
umask 077
cat > "$OUT" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: nodekit
  cluster:
    server: https://127.0.0.1:${NODEKIT_API_PORT:-16443}
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: $NAME
  user:
    client-certificate-data: $(b64 "$PKI/$NAME.crt")
    client-key-data: $(b64 "$PKI/$NAME.key")
contexts:
- name: nodekit
  context: {cluster: nodekit, user: $NAME}
current-context: nodekit
YAML
