#!/usr/bin/env bash
# Idempotent extras for `ebpf-producer bench` (Debian 12, root): the peer pipeline the benchmark
# measures the collector against (bpftrace 0.17 | kcat 1.7, Debian's own packages, so a user's
# `apt install` gets the same versions) and a C compiler for the load generator.
# Each package is checked before anything is installed, so a second run changes nothing.
set -euo pipefail

log() { printf 'bench-setup: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root (it installs Debian packages)"; exit 1
fi

pkgs=(bpftrace kcat gcc libc6-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
