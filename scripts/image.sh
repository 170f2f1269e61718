#!/usr/bin/env bash
# The collector's OCI image without a registry or a Docker engine (Debian 12, root): podman builds the
# repository's Dockerfile on a Debian 12 base bootstrapped here with mmdebstrap from this host's apt sources.
#   image.sh build       base (if missing), then the image; layers are cached, so a rebuild takes seconds
#   image.sh base        only the base image: bootstrap it once, re-import the cached tarball when missing
#   image.sh ref         print the image's name (EKP_IMAGE, default localhost/ebpf-kafka-producer:<version>)
#   image.sh podman ARG  podman with the project's containers.conf (runc, cgroupfs, rlimits this host allows)
#   image.sh clean       remove the image, the base and the cache below
# Each step checks before it acts. Cache: $EKP_CACHE/image (default ~/.cache/ebpf-kafka-producer), never
# git; nothing is written under /etc. Images live in podman's own storage, so `podman save` sees them.
#   EKP_APT_SOURCES  the apt sources the base is made from (default: this host's, deb822 or one-line)
#   EKP_CA_BUNDLE    trust roots for pip inside the build (default: this host's, /etc/ssl/certs)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache=${EKP_CACHE:-$HOME/.cache/ebpf-kafka-producer}/image
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/pyproject.toml")
image=${EKP_IMAGE:-localhost/ebpf-kafka-producer:$version}
base=localhost/debian:12-slim
base_tar=$cache/debian-12-slim.tar
conf=$cache/containers.conf
ca_bundle=${EKP_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

log() { printf 'image: %s\n' "$*" >&2; }
# shellcheck source=apt.sh
. "$here/apt.sh"

timed() {  # timed WHAT CMD...: run CMD, then log how long it took
  local what=$1 t0=$SECONDS; shift
  "$@"
  log "$what in $((SECONDS - t0)) s"
}

deps() {
  [ "$(id -u)" -eq 0 ] || { log "must run as root (mmdebstrap --mode=root, rootful podman)"; exit 1; }
  ensure_packages podman buildah runc mmdebstrap
  mkdir -p "$cache"
  # crun (podman's default) refuses hybrid cgroups and there is no systemd, so runc with cgroupfs.
  # podman's default rlimits exceed the hard limits of a root without CAP_SYS_RESOURCE: use the
  # current hard limits, which the runtime may set without raising anything. For nproc runc failed above
  # kernel.pid_max ("error setting rlimit type 6: operation not permitted", 32768 was the highest that worked).
  local nofile nproc pid_max
  nofile=$(ulimit -Hn) nproc=$(ulimit -Hu) pid_max=$(cat /proc/sys/kernel/pid_max)
  [ "$nofile" != unlimited ] || nofile=1048576
  if [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pid_max" ]; then nproc=$pid_max; fi
  cat > "$conf.tmp" <<EOF
# Written by scripts/image.sh; passed to podman as CONTAINERS_CONF.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
[network]
# Containers here use the host's network; podman's own network state stays out of /etc/cni.
network_config_dir = "$cache/networks"
EOF
  mv -f "$conf.tmp" "$conf"
}

pm() { CONTAINERS_CONF=$conf podman "$@"; }

sources() {
  local s
  for s in "${EKP_APT_SOURCES:-}" /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    if [ -n "$s" ] && [ -s "$s" ]; then echo "$s"; return 0; fi
  done
  log "no apt sources found; set EKP_APT_SOURCES to a deb822 .sources or one-line .list file"; exit 1
}

bootstrap() {
  local tmp
  tmp=$(mktemp "$cache/base.XXXXXX.tar")
  # minbase plus the path excludes of Docker's -slim images (no docs, man pages or locales).
  mmdebstrap --variant=minbase --mode=root --quiet \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    bookworm "$tmp" "$(sources)"
  mv -f "$tmp" "$base_tar"  # whole tarball or none
}

make_base() {
  deps
  if pm image exists "$base"; then log "base $base present"; return 0; fi
  if [ ! -s "$base_tar" ]; then
    log "bootstrapping Debian 12 (bookworm) with mmdebstrap from $(sources)"
    timed "bootstrapped $base_tar" bootstrap
  fi
  timed "imported $base" pm import --quiet "$base_tar" "$base" >/dev/null
}

podman_build() {
  # --network=host: the default bridge network leaves netavark's nftables tables on the host.
  # Progress: the Dockerfile's steps as they start; everything else goes to the log.
  # The host's trust roots, for pip behind a TLS-inspecting proxy (a build secret: it stays out of the image).
  local secret=()
  [ ! -s "$ca_bundle" ] || secret=(--secret "id=ca-bundle,src=$ca_bundle")
  if ! pm build --network=host --build-arg "BASE_IMAGE=$base" "${secret[@]}" -t "$image" -f "$root/Dockerfile" "$root" 2>&1 \
    | tee "$cache/build.log" | { grep --line-buffered 'STEP [0-9]' || true; } | sed -u 's/^/image:   /' >&2; then
    tail -n 30 "$cache/build.log" >&2
    log "build failed; full output in $cache/build.log"
    exit 1
  fi
}

build() {
  make_base
  local old
  old=$(pm image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
  log "building $image from $root/Dockerfile on $base (full output: $cache/build.log)"
  timed "built $image" podman_build
  local new; new=$(pm image inspect --format '{{.Id}}' "$image")
  # A rebuild leaves the previous image untagged; drop it (its shared layers stay for the next build).
  if [ -n "$old" ] && [ "$old" != "$new" ]; then pm rmi --force "$old" >/dev/null 2>&1 || true; fi
}

clean() {
  if command -v podman >/dev/null; then
    # The image, every stage's cached layers (the Dockerfile labels them all), then the base.
    local ids
    ids=$(pm images --all --quiet --filter "label=org.opencontainers.image.title=ebpf-kafka-producer" | sort -u)
    [ -z "$ids" ] || pm rmi --force $ids >/dev/null 2>&1 || true
    pm rmi --force "$image" "$base" >/dev/null 2>&1 || true
  fi
  rm -rf "$cache"
  log "removed $image, its build cache, $base and $cache"
}

case ${1:-build} in
  build) build ;;
  base) make_base ;;
  ref) echo "$image" ;;
  podman) shift; [ -s "$conf" ] || deps; CONTAINERS_CONF=$conf exec podman "$@" ;;
  clean) clean ;;
  *) log "usage: image.sh [build|base|ref|podman ARGS...|clean]"; exit 2 ;;
esac
