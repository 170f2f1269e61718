#!/usr/bin/env bash
# Vendors the CRI v1 API definition (k8s.io/cri-api, pkg/apis/runtime/v1/api.proto) from the Go module
# proxy into producer/k8s/proto/api.proto. The Python stubs are generated from it at build time (setup.py),
# never committed. Updating is one command:
#   scripts/cri-proto.sh [VERSION]      default: the version recorded in the vendored file
# cri-api up to v0.33 imports gogoproto for Go-only code generation options; those lines are stripped
# (they change nothing in the wire format), so an older pin works too. v0.34 and later need no stripping.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dest=$here/../producer/k8s/proto/api.proto
log() { printf 'cri-proto: %s\n' "$*" >&2; }

recorded=$(sed -n 's|^// Vendored from k8s.io/cri-api@\([^ ]*\) .*|\1|p' "$dest" 2>/dev/null || true)
version=${1:-${recorded:-v0.37.2}}
command -v go >/dev/null || { log "go is needed to reach the Go module proxy; install golang"; exit 1; }

# Outside any module, and never a toolchain download: only the proxy's modules are reachable.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
dir=$(GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download -json "k8s.io/cri-api@$version" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
src=$dir/pkg/apis/runtime/v1/api.proto
[ -f "$src" ] || { log "k8s.io/cri-api@$version has no pkg/apis/runtime/v1/api.proto"; exit 1; }

tmp=$work/api.proto
{
  echo "// Vendored from k8s.io/cri-api@$version pkg/apis/runtime/v1/api.proto by scripts/cri-proto.sh; do not edit."
  # File-level gogoproto import and options only: they configure Go code generation, not messages.
  sed -e '/^import "github.com\/gogo\/protobuf\/gogoproto\/gogo.proto";/d' -e '/^option (gogoproto\./d' "$src"
} > "$tmp"
if grep -q gogo "$tmp"; then
  log "k8s.io/cri-api@$version uses gogoproto beyond file options; pick v0.34.0 or newer"; exit 1
fi
install -m 644 "$tmp" "$dest"
log "vendored k8s.io/cri-api@$version ($(grep -c '^ *rpc ' "$dest") rpcs) into producer/k8s/proto/api.proto"
