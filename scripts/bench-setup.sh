#!/usr/bin/env bash
# Idempotent extras for `python -m bench` (`make bench`) (Debian 12, root): the peer pipeline the benchmark
# measures the collector against (bpftrace 0.17 | kcat 1.7, Debian's own packages, so a user's
# `apt install` gets the same versions) and a C compiler for the load generator.
# Each package is checked before anything is installed, so a second run changes nothing.
set -euo pipefail

log() { printf 'bench-setup: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root (it installs Debian packages)"; exit 1
fi

# shellcheck source=apt.sh
. "$(cd "$(dirname "$0")" && pwd)/apt.sh"
ensure_packages bpftrace kcat gcc libc6-dev
