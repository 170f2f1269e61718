#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft) on 127.0.0.1, from the jars on Maven Central.
#   kafka.sh fetch   resolve the broker's classpath into the cache (once)
#   kafka.sh up      format the log dir (once) and start the broker; returns when it accepts connections
#   kafka.sh down    stop it (SIGTERM, then SIGKILL after 30 s)
#   kafka.sh fresh   stop it, delete its topics and logs, and start it again (make test does this: every
#                    test makes topics of its own, and a broker that kept them all from run to run took
#                    over a minute to restart)
#   kafka.sh status  exit 0 when the broker process is alive
# Jars live in $EKP_CACHE (default ~/.cache/ebpf-kafka-producer), never in git.
# A second instance takes EKP_KAFKA_PORT, EKP_KAFKA_CONTROLLER_PORT and EKP_KAFKA_RUN (its own run dir), and
#   EKP_KAFKA_EXTRA_PROPERTIES  a file appended to server.properties (later keys win: TLS/SASL listeners)
#   EKP_KAFKA_SCRAM             SCRAM users created when the log dir is formatted, one per line,
#                               e.g. SCRAM-SHA-512=[name=alice,password=...]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${EKP_CACHE:-$HOME/.cache/ebpf-kafka-producer}
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml")
# The pom hash names the cache, so editing the pom re-resolves instead of reusing stale jars.
pomhash=$(sha256sum "$here/kafka/pom.xml" | cut -c1-12)
libs=$cache/kafka-$version-$pomhash/libs
run=${EKP_KAFKA_RUN:-$cache/kafka-run}
port=${EKP_KAFKA_PORT:-9092}
cport=${EKP_KAFKA_CONTROLLER_PORT:-9093}
pidfile=$run/broker.pid

log() { printf 'kafka: %s\n' "$*" >&2; }
# shellcheck source=service.sh
. "$here/service.sh"

fetch() {
  if [ -f "$libs/.complete" ]; then return 0; fi
  command -v mvn >/dev/null || { log "mvn not found: run scripts/host-setup.sh"; exit 1; }
  log "resolving Apache Kafka $version from Maven Central into $libs"
  mkdir -p "$libs"
  mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$libs" -DincludeScope=runtime >&2
  touch "$libs/.complete"
}


accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

java_run() {
  local main=$1; shift
  java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dkafka.logs.dir="$run/logs" -Dlog4j2.configurationFile="$here/kafka/log4j2.properties" \
    -cp "$libs/*" "$main" "$@"
}

up() {
  fetch
  if alive && accepts; then log "already up on 127.0.0.1:$port"; return 0; fi
  mkdir -p "$run/logs"
  sed -e "s|@PORT@|$port|g" -e "s|@CONTROLLER_PORT@|$cport|g" -e "s|@DATA@|$run/data|g" \
    "$here/kafka/server.properties.in" > "$run/server.properties"
  if [ -n "${EKP_KAFKA_EXTRA_PROPERTIES:-}" ]; then cat "$EKP_KAFKA_EXTRA_PROPERTIES" >> "$run/server.properties"; fi
  if [ ! -f "$run/data/meta.properties" ]; then
    local id; id=$(java_run kafka.tools.StorageTool random-uuid)
    local scram=() line
    while IFS= read -r line; do [ -n "$line" ] && scram+=(--add-scram "$line"); done <<< "${EKP_KAFKA_SCRAM:-}"
    java_run kafka.tools.StorageTool format --standalone -t "$id" -c "$run/server.properties" "${scram[@]}" >&2
  fi
  if ! alive; then
    nohup java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
      -Dkafka.logs.dir="$run/logs" -Dlog4j2.configurationFile="$here/kafka/log4j2.properties" \
      -cp "$libs/*" kafka.Kafka "$run/server.properties" >"$run/logs/stdout.log" 2>&1 &
    echo $! > "$pidfile"
  fi
  wait_ready accepts "up on 127.0.0.1:$port" "$run/logs/stdout.log"
}

down() { stop 30; }

fresh() {
  down
  rm -rf "$run/data" "$run/logs"
  up
}

case "${1:-}" in
  fetch) fetch ;;
  up) up ;;
  down) down ;;
  fresh) fresh ;;
  status) alive ;;
  *) echo "usage: $0 fetch|up|down|fresh|status" >&2; exit 2 ;;
esac
