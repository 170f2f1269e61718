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
for cmd in "uname -sr" "id -un" "ls -d /etc" "sh -c 'echo hello from the demo; exit 3'" \
           "exec 3<>/dev/tcp/127.0.0.1/9092; echo connected to the broker with bash"; do
  echo "\$ $cmd"; bash -c "$cmd" || echo "(exit status $?)"
done
wait "$collector"
grep -E "collector_started|ledger_final|collector_stopped" "$log" || true

echo
echo "== events read back from Kafka (topics ebpf.process_exec, ebpf.process_exit, ebpf.tcp_connect), decoded"
echo "   with schemas/*.avsc. Every process of this host is collected; shown here: the demo's own commands."
events=$(mktemp /tmp/ebpf-producer-demo.XXXXXX.events)
"$bin" tail -t ebpf.process_exec -t ebpf.process_exit -t ebpf.tcp_connect --since "$start" --idle-timeout 4 \
  --format brief | sort > "$events"
# first pass: the pids this script started (their exec names it as parent); second: their events
awk -v me="$$" 'NR == FNR { if ($2 == "process_exec" && index($0, " ppid=" me " ")) { split($5, a, "="); keep[a[2]] = 1 }; next }
  { split($5, a, "="); if (a[2] in keep) print }' "$events" "$events"
echo "   (all $(wc -l < "$events") events of this run: $events)"
echo
echo "== the drop ledger of this run (topic ebpf.drops), last report"
"$bin" tail -t ebpf.drops --since "$start" --idle-timeout 4 --format brief | tail -n 1
