#!/usr/bin/env bash
# Builds infergate's image with podman where no Docker daemon runs and no registry answers (this
# project's CI): the base is Debian 13 made here with debootstrap, imported once and kept.
#   deploy/image/build.sh [IMAGE]        (default localhost/infergate:ci; run as root)
# The host's CA bundle goes to the build as the `ca` secret, for a TLS-intercepting proxy.
set -euo pipefail
cd "$(dirname "$0")/../.."
image="${1:-localhost/infergate:ci}"
base=localhost/infergate-base:trixie
# crun fails here on cgroups and rlimits; runc with cgroupfs works, with host networking.
podman=(podman --runtime /usr/sbin/runc --cgroup-manager=cgroupfs)
limits=(--network=host --ulimit nofile=10000:10000 --ulimit nproc=4096:4096)

if ! "${podman[@]}" image exists "$base"; then
  echo "image: building the base $base with debootstrap (about a minute)"
  root="$(mktemp -d)"
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase trixie "$root" http://deb.debian.org/debian >/dev/null
  # As Debian's -slim images: no package lists or archives, docs, manuals or translations, now or later.
  rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
    "$root"/usr/share/info/* "$root"/var/log/*.log
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' 'path-exclude /usr/share/man/*' \
    'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \
    >"$root/etc/dpkg/dpkg.cfg.d/slim"
  tar -C "$root" -c . | "${podman[@]}" import - "$base" >/dev/null 2>&1
fi

echo "image: building $image from ./Dockerfile on $base"
started=$SECONDS
"${podman[@]}" build "${limits[@]}" --format docker --quiet \
  --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt \
  --build-arg BASE="$base" \
  --build-arg VERSION="$(node -p 'require("./package.json").version')" \
  --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  -t "$image" . >/dev/null
# Layers no tag uses any more, from builds over a week old (newer ones are the build cache).
"${podman[@]}" image prune -f --filter until=168h >/dev/null
size="$("${podman[@]}" image inspect --format '{{.Size}}' "$image")"
echo "image: $image built in $((SECONDS - started)) s, $((size / 1000000)) MB"
