#!/usr/bin/env bash
# A real Confluent-compatible schema registry on 127.0.0.1, for the tests: Apicurio Registry, from the
# distribution Apicurio publishes on Maven Central (io.apicurio:apicurio-registry-app:VERSION:tar.gz:all, a
# Quarkus fast-jar that runs on Java 17). Storage is in memory (H2), so every start is empty.
# Its Confluent API: http://127.0.0.1:$EKP_REGISTRY_PORT/apis/ccompat/v7
#   registry.sh fetch   download and unpack it into the cache (once)
#   registry.sh up      start it; returns when the API answers
#   registry.sh down    stop it
#   registry.sh status  exit 0 when it is alive
# Lives in $EKP_CACHE (default ~/.cache/ebpf-kafka-producer), never in git. EKP_REGISTRY_PORT (default
# 18081) and EKP_REGISTRY_RUN (run dir: pid file and log) allow more than one.
set -euo pipefail

version=2.6.13.Final
cache=${EKP_CACHE:-$HOME/.cache/ebpf-kafka-producer}
home=$cache/apicurio-registry-$version
run=${EKP_REGISTRY_RUN:-$cache/registry-run}
port=${EKP_REGISTRY_PORT:-18081}
pidfile=$run/registry.pid
api=http://127.0.0.1:$port/apis/ccompat/v7

log() { printf 'registry: %s\n' "$*" >&2; }
# shellcheck source=service.sh
. "$(cd "$(dirname "$0")" && pwd)/service.sh"

fetch() {
  if [ -f "$home/.complete" ]; then return 0; fi
  command -v mvn >/dev/null || { log "mvn not found: run scripts/host-setup.sh"; exit 1; }
  log "fetching Apicurio Registry $version from Maven Central into $home"
  rm -rf "$home" "$home.dl" && mkdir -p "$home" "$home.dl"
  mvn -q -B dependency:copy -Dartifact="io.apicurio:apicurio-registry-app:$version:tar.gz:all" \
    -DoutputDirectory="$home.dl" >&2
  tar -xzf "$home.dl/apicurio-registry-app-$version-all.tar.gz" -C "$home"
  rm -rf "$home.dl"
  touch "$home/.complete"
}


answers() { curl -sf -o /dev/null --max-time 2 "$api/subjects"; }

up() {
  fetch
  if alive && answers; then log "already up at $api"; return 0; fi
  mkdir -p "$run"
  if ! alive; then
    (
      cd "$run"
      nohup java -Xms64m -Xmx512m -Djava.awt.headless=true \
        -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port" \
        -jar "$home/apicurio-registry-app-$version-runner.jar" >"$run/registry.log" 2>&1 &
      echo $! > "$pidfile"
    )
  fi
  wait_ready answers "up at $api" "$run/registry.log"
}

down() { stop 20; }

case "${1:-}" in
  fetch) fetch ;;
  up) up ;;
  down) down ;;
  status) alive ;;
  *) echo "usage: $0 fetch|up|down|status" >&2; exit 2 ;;
esac
