#!/usr/bin/env bash
# registry-up.sh: start Debian's docker-registry on 127.0.0.1 twice — an
# open registry and one that wants basic auth (htpasswd) — both serving one
# storage dir, push the locally built busybox image into it as
# nodekit/busybox:1.36 (ctr images push --plain-http, from containerd 2.x,
# which containerd-up.sh starts if needed), and write the hosts.toml files
# through which both test-bed runtimes pull from them over plain HTTP
# (containerd-up.sh points registry.config_path at them).
# Idempotent: running registries are left alone. Stop with registry-down.sh.
#
# State in $NODEKIT_STATE/registry: storage/, certs.d/<host:port>/hosts.toml,
# htpasswd and password (user "nodekit", random password, made once),
# *.yml, *.pid, *.log, and registry.env (what the tests read:
# internal/testenv/registry.go).
#
# Environment: NODEKIT_REGISTRY_PORT [15000], NODEKIT_REGISTRY_AUTH_PORT [15001].
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root
"$NODEKIT_ROOT/hack/install-deps.sh"

REG="$NODEKIT_STATE/registry"
PORT="${NODEKIT_REGISTRY_PORT:-15000}"; AUTH_PORT="${NODEKIT_REGISTRY_AUTH_PORT:-15001}"
BIN=/usr/bin/docker-registry
USER_NAME=nodekit
IMAGE=nodekit/busybox:1.36
BUSYBOX_IMAGE="${BUSYBOX_IMAGE:-docker.io/library/busybox:1.36}"
[ -x "$BIN" ] || die "$BIN missing (Debian package docker-registry)"
mkdir -p "$REG/storage" "$REG/certs.d"

# The password is made once; the htpasswd entry is bcrypt (the only hash the
# registry accepts), through libxcrypt's crypt(3) from perl.
if [ ! -s "$REG/password" ]; then
  (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$REG/password")
fi
PASSWORD="$(cat "$REG/password")"
if [ ! -s "$REG/htpasswd" ]; then
  salt="$(head -c 64 /dev/urandom | base64 | tr -dc './A-Za-z0-9' | head -c 22)"
  hash="$(PW="$PASSWORD" SALT="$salt" perl -e 'print crypt($ENV{PW}, "\$2b\$10\$" . $ENV{SALT})')"
  case "$hash" in '$2b$10$'*) ;; *) die "crypt(3) has no bcrypt here: $hash" ;; esac
  echo "$USER_NAME:$hash" > "$REG/htpasswd"
fi

# write_config NAME PORT [auth]: the registry's config file.
write_config() {
  cat <<YAML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $REG/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$2
YAML
  if [ "${3:-}" = auth ]; then
    printf 'auth:\n  htpasswd:\n    realm: nodekit\n    path: %s\n' "$REG/htpasswd"
  fi
}

# status PORT: the HTTP status of /v2/ (200 open, 401 with auth).
status() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1/v2/"; }
answers() { [ "$(status "$1")" = "$2" ]; }

start_registry() { # NAME PORT WANT_STATUS [auth]
  local name="$1" port="$2" want="$3" pid
  if pid="$(pid_of "$REG/$name.pid" "$BIN")"; then
    log "$name already running (pid $pid) on 127.0.0.1:$port"
    return 0
  fi
  write_config "$name" "$port" "${4:-}" > "$REG/$name.yml"
  start_daemon "$REG/$name.pid" "$REG/$name.log" "$BIN" serve "$REG/$name.yml"
  wait_until 30 "$name" "$(cat "$REG/$name.pid")" answers "$port" "$want"
  log "$name pid $(cat "$REG/$name.pid") answers on 127.0.0.1:$port"
}
start_registry registry "$PORT" 200
start_registry registry-auth "$AUTH_PORT" 401 auth

# hosts.toml: plain HTTP for both registries, for every runtime.
for p in "$PORT" "$AUTH_PORT"; do
  mkdir -p "$REG/certs.d/127.0.0.1:$p"
  cat > "$REG/certs.d/127.0.0.1:$p/hosts.toml" <<TOML
server = "http://127.0.0.1:$p"

[host."http://127.0.0.1:$p"]
  capabilities = ["pull", "resolve", "push"]
  skip_verify = true
TOML
done

# Push busybox once; the storage outlives restarts.
manifest="http://127.0.0.1:$PORT/v2/${IMAGE%:*}/manifests/${IMAGE##*:}"
accept='Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json'
if [ "$(curl -s -o /dev/null -w '%{http_code}' -H "$accept" "$manifest")" != 200 ]; then
  RUNTIME=containerd "$NODEKIT_ROOT/hack/containerd-up.sh"
  ( RUNTIME=containerd; . "$NODEKIT_ROOT/hack/containerd-env.sh"
    "${CTR[@]}" images push --plain-http "127.0.0.1:$PORT/$IMAGE" "$BUSYBOX_IMAGE" >/dev/null ) ||
    die "ctr images push of $BUSYBOX_IMAGE to 127.0.0.1:$PORT failed"
  log "pushed $BUSYBOX_IMAGE as 127.0.0.1:$PORT/$IMAGE"
fi

cat > "$REG/registry.env" <<ENV
REGISTRY=127.0.0.1:$PORT
REGISTRY_AUTH=127.0.0.1:$AUTH_PORT
REGISTRY_USER=$USER_NAME
REGISTRY_PASSWORD=$PASSWORD
REGISTRY_IMAGE=$IMAGE
ENV
chmod 600 "$REG/registry.env"
log "registries up: 127.0.0.1:$PORT (open), 127.0.0.1:$AUTH_PORT (basic auth, user $USER_NAME)"
