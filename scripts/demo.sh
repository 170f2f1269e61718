#!/usr/bin/env bash
# make demo: run the collector on the built-in defaults for ~20 s against the
# local broker, run a few commands meanwhile, then read the events and the
# drop ledger back from Kafka and print them.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin/ebpf-producer
start=$(date +%s)
log=$(mktemp /tmp/ebpf-producer-demo.XXXXXX.log)

echo "== ebpf-producer run --duration 20   (collector log: $log)"
"$bin" run --duration 20 2>"$log" &
collector=$!
for _ in $(seq 1 100); do
  grep -q reader_started "$log" && break
  kill -0 "$collector" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.2
done
sleep 1

echo "== running a few commands while it collects"
for cmd in "uname -sr" "id -un" "ls -d /etc" "sh -c 'echo hello from the demo'" "date -u +%FT%TZ"; do
  echo "\$ $cmd"; bash -c "$cmd"
done
wait "$collector"
grep -E "collector_started|ledger_final|collector_stopped" "$log" || true

echo
echo "== events read back from Kafka (topic ebpf.process_exec), decoded with schemas/process_exec.avsc"
"$bin" tail -t ebpf.process_exec --since "$start" --idle-timeout 4 --format brief
echo
echo "== the drop ledger of this run (topic ebpf.drops), last report"
"$bin" tail -t ebpf.drops --since "$start" --idle-timeout 4 --format brief | tail -n 1
