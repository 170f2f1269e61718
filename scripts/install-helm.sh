#!/usr/bin/env bash
# helm for the chart tests, built from source through the Go module proxy: the
# build and CI machines reach package registries only, so no prebuilt release
# binary can be fetched. Installs to ~/.cache (outside git) and does nothing when the pinned
# version is already there. A first build takes ~1.5 min on 2 cores and leaves
# ~1.1 GiB in Go's module and build caches.
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v3.22.0}
BIN_DIR=${EKP_TOOLS_BIN:-$HOME/.cache/ebpf-kafka-producer/bin}
HELM=$BIN_DIR/helm

log() { printf 'install-helm: %s\n' "$*" >&2; }

if [ -x "$HELM" ] && [ "$("$HELM" version --template '{{.Version}}' 2>/dev/null)" = "$HELM_VERSION" ]; then
  exit 0
fi
command -v go >/dev/null || { log "go is not installed; helm is built from source with it"; exit 1; }

# Never let go fetch a different toolchain: only the proxy's modules are reachable.
export GOTOOLCHAIN=local CGO_ENABLED=0

# helm reports (and checks charts' kubeVersion against) the Kubernetes version set
# at link time; without these flags it claims an old default. Its release build
# takes them from the client-go it is built with, so do the same.
gomod=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
client_go=$(awk '$1 == "k8s.io/client-go" {print $2; exit}' "$gomod")
k8s_major=$(( $(cut -d. -f1 <<<"${client_go#v}") + 1 ))
k8s_minor=$(cut -d. -f2 <<<"$client_go")

ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
ldflags+=" -X helm.sh/helm/v3/internal/version.metadata="
for pkg in pkg/chartutil pkg/lint/rules; do
  ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=$k8s_major -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$k8s_minor"
done

log "building helm $HELM_VERSION (Kubernetes $k8s_major.$k8s_minor) into $BIN_DIR"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
GOBIN=$tmp go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
mkdir -p "$BIN_DIR"
mv -f "$tmp/helm" "$HELM"  # whole binary or none: a half-built helm must not pass the check above
log "built $("$HELM" version --short) in $((SECONDS - start)) s"
