# Shared by kafka.sh and registry.sh: a background service tracked by a pid file.
# The sourcing script sets $pidfile and defines log().

alive() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

# wait_ready PROBE WHAT LOGFILE: poll PROBE (a command) for up to 60 s while the process lives.
wait_ready() {
  local probe=$1 what=$2 logfile=$3
  for _ in $(seq 1 120); do
    if "$probe"; then log "$what (pid $(cat "$pidfile"), log $logfile)"; return 0; fi
    alive || { log "exited during start"; tail -n 20 "$logfile" >&2; exit 1; }
    sleep 0.5
  done
  log "not ready within 60 s; see $logfile"; exit 1
}

# stop GRACE_S: SIGTERM, then SIGKILL after GRACE_S seconds.
stop() {
  if ! alive; then rm -f "$pidfile"; log "not running"; return 0; fi
  local pid; pid=$(cat "$pidfile")
  kill -TERM "$pid"
  for _ in $(seq 1 $(($1 * 2))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  rm -f "$pidfile"
  log "stopped"
}
