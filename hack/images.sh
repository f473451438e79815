#!/usr/bin/env bash
# images.sh OUT_DIR: build the test bed's two container images as
# `docker save`-style archives (manifest.json, config, one layer) that
# `ctr images import` takes; no registry is reachable here.
#   pause.tar    the static Go program in hack/images/pause (the sandbox image)
#   busybox.tar  Debian's busybox-static with its applets, Cmd ["sh"],
#                /www/index.html for httpd tests
# Rebuilt only when missing or older than their sources.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
OUT="${1:?usage: images.sh OUT_DIR}"
PAUSE_IMAGE="${PAUSE_IMAGE:-registry.k8s.io/pause:3.10.2}"
BUSYBOX_IMAGE="${BUSYBOX_IMAGE:-docker.io/library/busybox:1.36}"
ARCH="$(go env GOARCH)"
mkdir -p "$OUT"

# mkimage NAME ROOTFS CONFIG_JSON OUT_TAR: reproducible (sorted, mtime 0, root-owned).
mkimage() {
  local name="$1" rootfs="$2" cfg="$3" out="$4" t ldig cdig
  t="$(mktemp -d "$OUT/img.XXXXXX")"
  (cd "$rootfs" && find . -mindepth 1 | sed 's|^\./||' | LC_ALL=C sort) > "$t/files"
  tar --no-recursion --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$rootfs" -cf "$t/layer.tar" -T "$t/files"
  ldig="$(sha256sum "$t/layer.tar" | cut -d' ' -f1)"
  mkdir "$t/$ldig" && mv "$t/layer.tar" "$t/$ldig/layer.tar"
  jq -c -n --arg arch "$ARCH" --arg diff "sha256:$ldig" --argjson c "$cfg" '{
      architecture: $arch, os: "linux", created: "1970-01-01T00:00:00Z", config: $c,
      rootfs: {type: "layers", diff_ids: [$diff]},
      history: [{created: "1970-01-01T00:00:00Z", created_by: "nodekit hack/images.sh"}]}' > "$t/config.json"
  cdig="$(sha256sum "$t/config.json" | cut -d' ' -f1)"
  mv "$t/config.json" "$t/$cdig.json"
  jq -c -n --arg cfg "$cdig.json" --arg tag "$name" --arg layer "$ldig/layer.tar" \
     '[{Config: $cfg, RepoTags: [$tag], Layers: [$layer]}]' > "$t/manifest.json"
  tar --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$t" -cf "$out.new" manifest.json "$cdig.json" "$ldig/layer.tar"
  mv "$out.new" "$out"
  rm -rf "$t"
}

PATH_ENV='"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"'

if [ ! -s "$OUT/pause.tar" ] || [ "$NODEKIT_ROOT/hack/images/pause/main.go" -nt "$OUT/pause.tar" ]; then
  log "building $PAUSE_IMAGE"
  r="$OUT/pause-rootfs"; rm -rf "$r"; mkdir -p "$r"
  (cd "$NODEKIT_ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$r/pause" ./hack/images/pause)
  mkimage "$PAUSE_IMAGE" "$r" "{\"Entrypoint\":[\"/pause\"],\"User\":\"65535:65535\",\"WorkingDir\":\"/\",\"Env\":[$PATH_ENV]}" "$OUT/pause.tar"
  rm -rf "$r"
fi

if [ ! -s "$OUT/busybox.tar" ] || [ "$(readlink -f "$(command -v busybox)")" -nt "$OUT/busybox.tar" ]; then
  log "building $BUSYBOX_IMAGE from $(command -v busybox)"
  r="$OUT/busybox-rootfs"; rm -rf "$r"
  mkdir -p "$r"/{bin,etc,tmp,root,home,www,proc,sys,dev,var/log}
  chmod 1777 "$r/tmp"
  cp "$(readlink -f "$(command -v busybox)")" "$r/bin/busybox"
  for a in $("$r/bin/busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$r/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' > "$r/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' > "$r/etc/group"
  echo "hello from nodekit busybox" > "$r/www/index.html"
  mkimage "$BUSYBOX_IMAGE" "$r" "{\"Cmd\":[\"sh\"],\"Env\":[$PATH_ENV]}" "$OUT/busybox.tar"
  rm -rf "$r"
fi
