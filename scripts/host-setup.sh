#!/usr/bin/env bash
# Idempotent host preparation for the collector and its tests (Debian 12, root).
#   - Debian packages: BCC (python3-bpfcc), kernel headers BCC compiles against, venv, Java for Kafka and the
#     schema registry, openssl for the tests' certificates, and what builds the native data plane
#     (gcc, python3-dev, librdkafka-dev: only librdkafka's header is used; the library at run time is
#     the one inside the confluent-kafka wheel, producer/native/src/kafka.h)
#   - /lib/modules/$(uname -r)/{build,source} -> Debian's linux-headers-amd64 when no exact match exists
#   - tracefs mounted at /sys/kernel/tracing
# Each step checks before it acts, so a second run changes nothing.
set -euo pipefail

log() { printf 'host-setup: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root (it installs packages and mounts tracefs)"; exit 1
fi

# shellcheck source=apt.sh
. "$(cd "$(dirname "$0")" && pwd)/apt.sh"
ensure_packages python3-bpfcc linux-headers-amd64 python3-venv python3-pip openjdk-17-jre-headless maven curl procps openssl \
  gcc libc6-dev python3-dev librdkafka-dev

kver=$(uname -r)
moddir=/lib/modules/$kver
if [ ! -e "$moddir/build/include" ]; then
  hdr=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n1 || true)
  common=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n1 || true)
  if [ -z "$hdr" ] || [ -z "$common" ]; then
    log "no /usr/src/linux-headers-*-amd64 found; install linux-headers-amd64"; exit 1
  fi
  mkdir -p "$moddir"
  ln -sfn "$hdr" "$moddir/build"
  ln -sfn "$common" "$moddir/source"
  log "linked $moddir/build -> $hdr, source -> $common (BPF code must not dereference kernel structs)"
fi

if [ ! -e /sys/kernel/tracing/events ]; then
  mount -t tracefs tracefs /sys/kernel/tracing
  log "mounted tracefs at /sys/kernel/tracing"
fi
