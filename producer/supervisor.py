"""The supervisor: load BPF once, fork a reader per CPU group, keep them alive, publish the ledger.

Lifecycle::

    metrics server -> register schemas (schema_registry.url only; waits out an unavailable registry)
    -> compile + layout check + seed parents -> open every perf buffer -> attach
    -> fork readers -> loop { reap/restart readers, drop report every interval, metrics }
    -> on SIGTERM/SIGINT/--duration: detach -> SIGUSR1 readers (drain, flush, purge)
       -> wait, SIGKILL stragglers -> final drop report -> exit 0

Signal handlers only set a flag and poke a pipe; everything else happens in
the loop. A reader that dies is retired in the ledger (its unresolved
messages become reader_crash) and restarted with exponential backoff; the
others never notice.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from . import codec, procfs, registry
from . import loader as loader_mod
from .aggregate import SyscallCounts
from .config import Config, parse_listen
from .containers import ContainerResolver
from .errors import RegistryUnavailableError
from .ledger import Arena, Ledger, Snapshot
from .metrics import Health, MetricsServer, render
from .perfbuf import PerfBuffers
from .reader import STOP_SIGNAL, Reader
from .report import Reporter

log = structlog.get_logger("supervisor")

# A reader that stayed up this long is healthy again: its backoff resets.
_STABLE_S = 60.0
# Waiting for an unavailable schema registry at start-up.
_REGISTRY_BACKOFF_INITIAL_S = 1.0
_REGISTRY_BACKOFF_MAX_S = 30.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class ReaderSlot:
    index: int
    cpus: tuple[int, ...]
    pid: int = 0
    started: float = 0.0
    failures: int = 0
    restart_at: float = 0.0
    restarts: int = 0


class Supervisor:
    def __init__(self, cfg: Config, duration_s: float | None = None) -> None:
        self.cfg = cfg
        self.duration_s = duration_s
        self.host = cfg.hostname
        self.boot_id = loader_mod.boot_id()
        self._stop = False
        self._stop_reason = ""
        self._wake_r, self._wake_w = os.pipe()
        self.health = Health()
        self._page: tuple[str, Health] = ("", self.health)
        self.metrics: MetricsServer | None = None
        self.schema_ids: dict[str, int] = {}  # schema name -> registry id; empty: single-object framing
        self.slots: list[ReaderSlot] = []

    # -- signals -------------------------------------------------------------------------------

    def _install_signals(self) -> None:
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # just wakes the loop via the wakeup fd

    def _on_stop_signal(self, signum: int, _frame: Any) -> None:
        self._stop = True
        self._stop_reason = signal.Signals(signum).name

    # -- run -----------------------------------------------------------------------------------

    def run(self) -> int:
        cfg = self.cfg
        self._install_signals()
        cpus = loader_mod.online_cpus()
        groups = loader_mod.cpu_groups(cfg, cpus)  # a config error, so before anything is loaded
        # Up before any wait, so /healthz answers and /readyz says not ready while the registry is awaited.
        self._start_metrics()
        # Before any BPF: while the registry is unavailable nothing is seen, so nothing goes uncounted.
        self.schema_ids = self._register_schemas()
        if self._stop:
            log.info("collector_stopped", reason=self._stop_reason, before="bpf_attach")
            if self.metrics is not None:
                self.metrics.stop()
            return 0
        self.loader = loader_mod.Loader(cfg)
        self.loader.compile()
        self.loader.check_layouts()
        seeded = self.loader.seed()
        self.resolver = ContainerResolver()
        self._broker_pids = self._local_broker_pids()
        filters = self.loader.apply_filters(self._excluded(), self.resolver)
        types = list(cfg.events.streams())
        tables = self.loader.perf_tables()
        self.perf = PerfBuffers(tables, cpus, cfg.readers.perf_pages, cfg.readers.wakeup_events)
        self.arena = Arena(len(groups), len(types), max(cpus) + 1)
        self.ledger = Ledger(self.arena, types, groups)
        self.loader.attach()
        self.health.bpf_attached = True
        log.info(
            "collector_started",
            host=self.host,
            event_types=types,
            readers=len(groups),
            cpu_groups=[list(g) for g in groups],
            seeded=seeded,
            filter_entries=filters,
            excluded_broker_pids=sorted(self._broker_pids),
            perf_pages=cfg.readers.perf_pages,
            wakeup_events=cfg.readers.wakeup_events,
        )

        self.slots = [ReaderSlot(i, g) for i, g in enumerate(groups)]
        for slot in self.slots:
            self._spawn(slot)
        # After the first fork on purpose: librdkafka must not be forked
        # (later forks of replacement readers never touch this producer).
        self.reporter = Reporter(
            cfg, self.ledger, self.host, self.boot_id, schema_id=self.schema_ids.get("drop_report")
        )
        self.syscalls: SyscallCounts | None = None
        if cfg.events.syscall_counts.enabled:
            self.syscalls = SyscallCounts(
                cfg,
                self.loader.table("ekp_syscall_counts"),
                self.reporter.producer,
                self.host,
                self.boot_id,
                self.resolver,
                cfg.events.syscall_counts.interval_s,
                schema_id=self.schema_ids.get("syscall_counts"),
            )
        self._start_health_thread()

        deadline = time.monotonic() + self.duration_s if self.duration_s else None
        interval = cfg.accounting.interval_s
        next_report = time.monotonic() + interval
        next_page = 0.0
        while not self._stop:
            self._wait(0.2)
            now = time.monotonic()
            self._reap(now)
            self._restart_due(now)
            if deadline is not None and now >= deadline:
                self._stop, self._stop_reason = True, "duration"
            if self.syscalls is not None and now >= self.syscalls.next_due:
                self.syscalls.publish()
            if now >= next_report:
                self._refresh_broker_exclusion()
                self._publish(final=False)
                next_report = now + interval
            if now >= next_page:
                self._render_page()
                next_page = now + 1.0
            self.reporter.poll()
        return self._shutdown()

    def _register_schemas(self) -> dict[str, int]:
        """Register every schema under its topic's subject; returns schema name -> id ({} without a registry).

        An unavailable registry is retried with backoff until it answers or a
        stop signal arrives; a refusal (credentials, incompatible schema) raises.
        """
        rcfg = self.cfg.schema_registry
        if not rcfg.enabled:
            return {}
        reg = registry.Registry(rcfg)
        self.health.schemas_registered = False
        ids: dict[str, int] = {}
        backoff = _REGISTRY_BACKOFF_INITIAL_S
        attempts = 0
        while not self._stop:
            try:
                for name, subject in registry.subjects(self.cfg).items():
                    if name not in ids:
                        ids[name] = reg.register(subject, codec.load_schema(name))
            except RegistryUnavailableError as e:
                attempts += 1
                log.warning(
                    "schema_registry_unavailable", error=str(e), attempts=attempts, retry_in_s=backoff
                )
                self._render_page()
                self._wait(backoff)  # a stop signal ends the wait at once
                backoff = min(_REGISTRY_BACKOFF_MAX_S, backoff * 2)
                continue
            self.health.schemas_registered = True
            log.info("schemas_registered", url=reg.url, ids=ids)
            break
        return ids

    def _wait(self, timeout: float) -> None:
        with contextlib.suppress(InterruptedError):
            select.select([self._wake_r], [], [], timeout)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 512):
                pass

    # -- readers -------------------------------------------------------------------------------

    def _spawn(self, slot: ReaderSlot, *, drain_only: bool = False) -> None:
        # Block the stop signal across fork: the child unblocks it once its handler is set.
        signal.pthread_sigmask(signal.SIG_BLOCK, {STOP_SIGNAL})
        supervisor_pid = os.getpid()
        pid = os.fork()
        if pid == 0:  # child
            try:
                signal.set_wakeup_fd(-1)
                os.close(self._wake_r)
                os.close(self._wake_w)
                self.loader.forget_in_child()
                if self.metrics is not None:
                    self.metrics.httpd.socket.close()
                structlog.contextvars.bind_contextvars(reader=slot.index)
            except BaseException:
                os._exit(71)
            Reader(
                slot.index,
                slot.cpus,
                self.cfg,
                self.perf,
                self.arena,
                self.host,
                self.boot_id,
                supervisor_pid=supervisor_pid,
                drain_only=drain_only,
                schema_ids=self.schema_ids,
            ).main()
            os._exit(72)  # pragma: no cover - main() never returns
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {STOP_SIGNAL})
        slot.pid = pid
        slot.started = time.monotonic()
        if self.cfg.filters.exclude_self:
            self.loader.exclude_pid(pid)
        self.health.readers_alive = sum(1 for s in self.slots if s.pid)
        self.health.readers_total = len(self.slots)

    def _reaped(self) -> Iterator[tuple[ReaderSlot, int]]:
        """Readers that exited since the last call, with their wait status; other children are just reaped."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is not None:
                yield slot, status

    def _reap(self, now: float) -> None:
        for slot, status in self._reaped():
            self._reader_died(slot, status, now)

    def _reader_died(self, slot: ReaderSlot, status: int, now: float) -> None:
        self._forget_pid(slot.pid)
        slot.pid = 0
        crashed = self.ledger.retire(slot.index)
        if now - slot.started >= _STABLE_S:
            slot.failures = 0
        slot.failures += 1
        backoff = min(
            self.cfg.readers.restart_backoff_max_s,
            self.cfg.readers.restart_backoff_initial_s * 2 ** (slot.failures - 1),
        )
        slot.restart_at = now + backoff
        self.health.readers_alive = sum(1 for s in self.slots if s.pid)
        log.warning(
            "reader_died",
            reader=slot.index,
            cpus=list(slot.cpus),
            status=_describe(status),
            reader_crash=crashed,
            restart_in_s=round(backoff, 2),
        )

    def _restart_due(self, now: float) -> None:
        for slot in self.slots:
            if slot.pid == 0 and now >= slot.restart_at and not self._stop:
                slot.restarts += 1
                self.health.reader_restarts += 1
                self._spawn(slot)
                log.info("reader_restarted", reader=slot.index, pid=slot.pid, restarts=slot.restarts)

    # -- ledger publishing ---------------------------------------------------------------------

    def _snapshot(self) -> Snapshot:
        snap = self.ledger.snapshot(self.loader.read_counters)
        if self.syscalls is not None:
            # the map total is read after the kernel counters of the streams; its own
            # submit_failed is read after the map, so in_flight stays >= 0
            counted = self.syscalls.read()
            c = self.syscalls.counts
            snap.add_aggregate(
                "syscall_counts",
                self.loader.counters_of("syscall_counts"),
                counted,
                c.delivered,
                c.failed,
                c.shutdown,
            )
        return snap

    # -- who is not watched --------------------------------------------------------------------

    def _excluded(self) -> set[int]:
        pids = set(self._broker_pids)
        if self.cfg.filters.exclude_self:
            pids.add(os.getpid())
        return pids

    def _local_broker_pids(self) -> set[int]:
        """Processes listening on a bootstrap port of this host, when filters.exclude_local_broker."""
        if not self.cfg.filters.exclude_local_broker:
            return set()
        local = {"127.0.0.1", "::1", "localhost", "0.0.0.0", "[::1]", socket.gethostname(), self.host}
        ports = set()
        for server in self.cfg.kafka.bootstrap_servers.split(","):
            host, _, port = server.strip().rpartition(":")
            if host in local and port.isdigit():
                ports.add(int(port))
        return procfs.listening_pids(ports) - {os.getpid()} if ports else set()

    def _refresh_broker_exclusion(self) -> None:
        """A restarted broker has a new pid: deny it, and let the old pid go (pids are reused)."""
        now = self._local_broker_pids()
        for pid in now - self._broker_pids:
            self.loader.exclude_pid(pid)
        for pid in self._broker_pids - now:
            self._forget_pid(pid)
        self._broker_pids = now

    def _forget_pid(self, pid: int) -> None:
        if pid and pid not in self.cfg.filters.pid.deny:
            self.loader.include_pid(pid)

    def _publish(self, *, final: bool) -> Snapshot:
        snap = self._snapshot()
        rec = self.reporter.record(
            snap, final=final, cpu_seconds=self._cpu_seconds(), restarts=self.health.reader_restarts
        )
        self.reporter.publish(rec)
        self.health.reports_published = self.reporter.stats.published
        self.health.reports_failed = self.reporter.stats.failed
        return snap

    def _render_page(self, snap: Snapshot | None = None) -> None:
        if snap is None:
            # Before the BPF is loaded (waiting for the registry) there is no ledger yet.
            snap = self._snapshot() if hasattr(self, "ledger") else Snapshot()
        self.health.cpu_seconds = self._cpu_seconds()
        self._page = (render(snap, self.health), self.health)

    def _cpu_seconds(self) -> float:
        total = 0
        for pid in [os.getpid(), *(s.pid for s in self.slots if s.pid)]:
            total += _proc_cpu_ticks(pid)
        t = os.times()
        return total / _CLK_TCK + t.children_user + t.children_system

    def _start_metrics(self) -> None:
        if not self.cfg.metrics.listen:
            return
        host, port = parse_listen(self.cfg.metrics.listen)
        try:
            self.metrics = MetricsServer(host, port, lambda: self._page)
        except OSError as e:
            log.error("metrics_listen_failed", listen=self.cfg.metrics.listen, error=e.strerror)
            return
        self._render_page()
        self.metrics.start()
        log.info("metrics_listening", address=f"{host}:{self.metrics.port}")

    def _start_health_thread(self) -> None:
        # Never logs: a lock held by this thread at a fork would be held forever in the child.
        def probe() -> None:
            while not self._stop:
                self.health.kafka_reachable = self.reporter.kafka_reachable()
                time.sleep(5.0)

        self.health.kafka_reachable = self.reporter.kafka_reachable()
        threading.Thread(target=probe, name="kafka-health", daemon=True).start()

    # -- shutdown ------------------------------------------------------------------------------

    def _shutdown(self) -> int:
        t0 = time.monotonic()
        timeout = self.cfg.shutdown.timeout_s
        log.info("collector_stopping", reason=self._stop_reason, timeout_s=timeout)
        # Detach before telling readers, so that their final drain is final.
        self.loader.detach()
        self.health.bpf_attached = False
        for slot in self.slots:
            if not slot.pid:  # dead and waiting out its backoff: its rings still need a final drain
                self._spawn(slot, drain_only=True)
                log.info("reader_started_for_drain", reader=slot.index, pid=slot.pid)
        for slot in self.slots:
            if slot.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, STOP_SIGNAL)
        wait_until = t0 + max(1.0, timeout - 0.5)
        while any(s.pid for s in self.slots) and time.monotonic() < wait_until:
            self._wait(0.1)
            for slot, status in self._reaped():
                self._stopped_reader(slot, status)
        for slot in self.slots:
            if slot.pid:
                log.warning("reader_killed", reader=slot.index, reason="shutdown.timeout_s exceeded")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signal.SIGKILL)
                _, status = os.waitpid(slot.pid, 0)
                self._stopped_reader(slot, status)
        if self.syscalls is not None:
            # the programs are detached: this reading of the map is the last one
            self.syscalls.publish()
            if self.reporter.flush(max(0.5, t0 + timeout - 1.0 - time.monotonic())):
                self.reporter.purge()
            self.syscalls.close_books()
        snap = self._publish(final=True)
        self._render_page(snap)
        left = self.reporter.flush(min(4.0, max(1.0, t0 + timeout + 4.0 - time.monotonic())))
        if self.metrics is not None:
            self.metrics.stop()
        for b in snap.balances.values():
            # Counts are per CPU: summed here, so one CPU's row cannot hide another's.
            reasons: dict[str, int] = {}
            for (event_type, _cpu, reason, code), v in snap.counts.items():
                if event_type == b.event_type and reason not in ("seen", "delivered", "filtered"):
                    key = f"drop_{reason}" + (f"_{code}" if code else "")
                    reasons[key] = reasons.get(key, 0) + v
            log.info(
                "ledger_final",
                event_type=b.event_type,
                seen=b.seen,
                delivered=b.delivered,
                dropped=b.dropped,
                in_flight=b.in_flight,
                filtered=b.filtered,
                **reasons,
            )
        if left:
            log.warning("final_report_undelivered", reports=left, hint="the ledger_final lines above hold it")
        log.info("collector_stopped", seconds=round(time.monotonic() - t0, 2))
        return 0

    def _stopped_reader(self, slot: ReaderSlot, status: int) -> None:
        self._forget_pid(slot.pid)
        slot.pid = 0
        if os.waitstatus_to_exitcode(status) != 0:
            crashed = self.ledger.retire(slot.index)
            log.warning("reader_died", reader=slot.index, status=_describe(status), reader_crash=crashed)


def _describe(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"exit {code}"


def _proc_cpu_ticks(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return 0
    fields = stat[stat.rfind(b")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime, stime
