# shellcheck shell=bash
# lib.sh: what every hack/ script shares. Source it; do not run it.
#
# Two directories, both stable and overridable:
#   NODEKIT_CACHE [/var/cache/nodekit]  built binaries, keyed by version, kept
#                                       across runs so a warm start builds nothing
#   NODEKIT_STATE [/tmp/nodekit]        running state: sockets, pidfiles, certs,
#                                       logs (short, for AF_UNIX socket paths)

NODEKIT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODEKIT_CACHE="${NODEKIT_CACHE:-/var/cache/nodekit}"
NODEKIT_STATE="${NODEKIT_STATE:-/tmp/nodekit}"

# Versions of the real components the test bed runs.
CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.4.2}"
CRICTL_VERSION="${CRICTL_VERSION:-v1.37.0}"
KUBERNETES_VERSION="${KUBERNETES_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.0}"
STATICCHECK_VERSION="${STATICCHECK_VERSION:-v0.8.2}"

CONTAINERD_BIN="$NODEKIT_CACHE/containerd-$CONTAINERD_VERSION/bin"
CRICTL_BIN="$NODEKIT_CACHE/crictl-$CRICTL_VERSION/bin"
KUBE_BIN="$NODEKIT_CACHE/kubernetes-$KUBERNETES_VERSION/bin"
ETCD_BIN="$NODEKIT_CACHE/etcd-$ETCD_VERSION/bin"

export PATH="/usr/local/go/bin:$CRICTL_BIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

log() { printf '[%s %s] %s\n' "${0##*/}" "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }
now_ms() { date +%s%3N; }

# pid_of PIDFILE EXE: the pid in PIDFILE if that process is alive and runs EXE.
# Stop scripts use it so they end only what the start scripts began.
pid_of() {
  local pidfile="$1" exe="$2" pid
  [ -f "$pidfile" ] || return 1
  pid="$(cat "$pidfile")"
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$exe")" ] || return 1
  echo "$pid"
}

# start_daemon PIDFILE LOGFILE CMD...: start CMD in its own session, record its pid.
start_daemon() {
  local pidfile="$1" logfile="$2"; shift 2
  setsid "$@" </dev/null >>"$logfile" 2>&1 &
  echo "$!" > "$pidfile"
}

# stop_pid NAME PID: SIGTERM, then SIGKILL after 15 s.
stop_pid() {
  local name="$1" pid="$2"
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 150); do [ -d "/proc/$pid" ] || { log "$name (pid $pid) stopped"; return 0; }; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null; sleep 0.2
  log "$name (pid $pid) killed after 15 s"
}

# wait_until SECONDS WHAT PID CMD...: poll CMD until it succeeds; fail if PID dies.
wait_until() {
  local timeout="$1" what="$2" pid="$3"; shift 3
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    [ -d "/proc/$pid" ] || die "$what: process $pid exited"
    [ "$(date +%s)" -lt "$deadline" ] || die "$what: not ready after ${timeout}s"
    sleep 0.05
  done
}

# go_build_cached STAMP DIR CMD...: run a build in DIR unless STAMP exists.
# The stamp is written last, so an interrupted build is redone.
go_build_cached() {
  local stamp="$1" dir="$2"; shift 2
  [ -f "$stamp" ] && return 0
  mkdir -p "$(dirname "$stamp")"
  local t0; t0="$(now_ms)"
  (cd "$dir" && "$@") || die "build failed: $*"
  log "built ${stamp#"$NODEKIT_CACHE"/} in $(( ($(now_ms) - t0) / 1000 )) s"
  touch "$stamp"
}
