#!/usr/bin/env bash
# controlplane-up.sh: start a throw-away control plane on 127.0.0.1 — etcd and
# kube-apiserver (Node,RBAC authorization, NodeRestriction admission), and with
# NODEKIT_KCM=1 also kube-controller-manager — built by hack/build.sh.
# Idempotent: running components are left alone. Stop with controlplane-down.sh.
#
# State in $NODEKIT_STATE/cp: pki/ (CA, serving cert for 127.0.0.1, admin
# client cert in system:masters, service-account keys), admin.kubeconfig,
# logs/, *.pid. Node client certs: hack/node-kubeconfig.sh NODE.
#
# Environment: NODEKIT_ETCD_PORT [12379], NODEKIT_ETCD_PEER_PORT [12380],
# NODEKIT_API_PORT [16443], NODEKIT_KCM_PORT [20257], NODEKIT_KCM [0],
# NODEKIT_KCM_ARGS, NODEKIT_API_ARGS (extra flags).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
"$NODEKIT_ROOT/hack/install-deps.sh"
"$NODEKIT_ROOT/hack/build.sh" controlplane

CP="$NODEKIT_STATE/cp"; PKI="$CP/pki"
ETCD_PORT="${NODEKIT_ETCD_PORT:-12379}"; ETCD_PEER_PORT="${NODEKIT_ETCD_PEER_PORT:-12380}"
API_PORT="${NODEKIT_API_PORT:-16443}"; KCM_PORT="${NODEKIT_KCM_PORT:-20257}"
IP=127.0.0.1
mkdir -p "$PKI" "$CP/logs" "$CP/etcd" "$CP/kcm"

# gen_cert NAME SUBJECT EXTENDED_KEY_USAGE [SAN]: a CA-signed cert, once.
gen_cert() {
  local name="$1" subj="$2" eku="$3" san="${4:-}"
  [ -f "$PKI/$name.crt" ] && return 0
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } > "$PKI/$name.ext"
  openssl req -new -key "$PKI/$name.key" -subj "$subj" 2>/dev/null |
    openssl x509 -req -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial -days 3650 -sha256 \
      -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.ext"
}

if [ ! -f "$PKI/ca.crt" ]; then
  openssl genrsa -out "$PKI/ca.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=nodekit-ca" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI/ca.crt" 2>/dev/null
fi
gen_cert apiserver "/CN=kube-apiserver" serverAuth \
  "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
gen_cert admin "/O=system:masters/CN=admin" clientAuth
gen_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
if [ ! -f "$PKI/sa.key" ]; then
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
fi
"$NODEKIT_ROOT/hack/kubeconfig.sh" admin "$CP/admin.kubeconfig"

API_URL="https://$IP:$API_PORT"
CURL=(curl -fsS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key")
ready() { [ "$("$@" 2>/dev/null)" = ok ]; }

ETCD_URL="http://$IP:$ETCD_PORT"
if pid="$(pid_of "$CP/etcd.pid" "$ETCD_BIN/etcd")"; then
  log "etcd already running (pid $pid)"
else
  t0="$(now_ms)"
  # The data is thrown away with the test bed, so fsync buys nothing here.
  start_daemon "$CP/etcd.pid" "$CP/logs/etcd.log" "$ETCD_BIN/etcd" --name=nodekit --data-dir="$CP/etcd" \
    --listen-client-urls="$ETCD_URL" --advertise-client-urls="$ETCD_URL" \
    --listen-peer-urls="http://$IP:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://$IP:$ETCD_PEER_PORT" \
    --initial-cluster="nodekit=http://$IP:$ETCD_PEER_PORT" --initial-cluster-state=new \
    --unsafe-no-fsync --log-level=warn
  wait_until 60 etcd "$(cat "$CP/etcd.pid")" sh -c "curl -fsS '$ETCD_URL/health' | grep -q '\"health\":\"true\"'"
  log "etcd healthy after $(( $(now_ms) - t0 )) ms (pid $(cat "$CP/etcd.pid"))"
fi

if pid="$(pid_of "$CP/kube-apiserver.pid" "$KUBE_BIN/kube-apiserver")"; then
  log "kube-apiserver already running (pid $pid)"
else
  t0="$(now_ms)"
  # 127.0.0.1 is refused as an advertise address by the default endpoint
  # reconciler, hence --endpoint-reconciler-type=none.
  # shellcheck disable=SC2086
  start_daemon "$CP/kube-apiserver.pid" "$CP/logs/kube-apiserver.log" "$KUBE_BIN/kube-apiserver" \
    --etcd-servers="$ETCD_URL" --bind-address=$IP --advertise-address=$IP --secure-port="$API_PORT" \
    --cert-dir="$PKI" --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range=10.0.0.0/24 --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction --allow-privileged=true --endpoint-reconciler-type=none \
    ${NODEKIT_API_ARGS:-}
  wait_until 120 kube-apiserver "$(cat "$CP/kube-apiserver.pid")" ready "${CURL[@]}" "$API_URL/readyz"
  log "kube-apiserver ready after $(( $(now_ms) - t0 )) ms (pid $(cat "$CP/kube-apiserver.pid")) on $API_URL"
fi

# Pods cannot be created without the default ServiceAccount, which only the
# controller manager would make.
"${CURL[@]}" -o /dev/null -X POST -H 'Content-Type: application/json' \
  -d '{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"default"}}' \
  "$API_URL/api/v1/namespaces/default/serviceaccounts" 2>/dev/null || true

if [ "${NODEKIT_KCM:-0}" = 1 ]; then
  if pid="$(pid_of "$CP/kube-controller-manager.pid" "$KUBE_BIN/kube-controller-manager")"; then
    log "kube-controller-manager already running (pid $pid)"
  else
    t0="$(now_ms)"
    # --authentication-skip-lookup: the apiserver has no requestheader CA.
    # shellcheck disable=SC2086
    start_daemon "$CP/kube-controller-manager.pid" "$CP/logs/kube-controller-manager.log" "$KUBE_BIN/kube-controller-manager" \
      --kubeconfig="$CP/admin.kubeconfig" --authentication-kubeconfig="$CP/admin.kubeconfig" \
      --authorization-kubeconfig="$CP/admin.kubeconfig" --authentication-skip-lookup=true \
      --bind-address=$IP --secure-port="$KCM_PORT" --cert-dir="$CP/kcm" \
      --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
      --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
      --leader-elect=false ${NODEKIT_KCM_ARGS:-}
    wait_until 120 kube-controller-manager "$(cat "$CP/kube-controller-manager.pid")" \
      ready curl -fsSk --max-time 5 "https://$IP:$KCM_PORT/healthz"
    log "kube-controller-manager healthy after $(( $(now_ms) - t0 )) ms (pid $(cat "$CP/kube-controller-manager.pid"))"
  fi
fi
log "ready: KUBECONFIG=$CP/admin.kubeconfig"
