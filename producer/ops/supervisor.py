"""The supervisor: the collector's lifecycle, from the first check to the final drop report.

Lifecycle::

    metrics server -> register schemas (schema_registry.url only; waits out an unavailable registry)
    -> spool.dir: lock, scan what earlier runs left (ops/spooldir.py)
    -> compile + layout check + seed + filters -> open every perf buffer -> attach
    -> fork readers -> earlier runs' final reports (recovered) -> loop { reap/restart readers,
       drop report every interval, metrics page }
    -> on SIGTERM/SIGINT/--duration: detach -> SIGUSR1 readers (drain, flush, purge)
       -> wait, SIGKILL stragglers -> final drop report -> exit 0

Each stage is a room of its own: the readers (ops/pool.py), who is not watched (ops/exclusion.py),
the registry (ops/registration.py), the books (ledger/accounting.py), /metrics (ops/metrics.py),
the kernel side (kernel/). This module only orders them. Signal handlers only set a flag and poke
a pipe; everything else happens in the loop.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
import uuid
from typing import Any

import structlog

from .. import native
from ..config import Config, parse_listen
from ..kafka.publisher import Publisher
from ..kernel import cpus as cpus_mod
from ..kernel import proctable
from ..kernel.attach import Attachment
from ..kernel.build import BpfModule
from ..kernel.counters import KernelCounters
from ..kernel.filters import Filters
from ..kernel.perfbuf import PerfBuffers
from ..kernel.seed import seed
from ..ledger.accounting import Accounting
from ..ledger.arena import DETACHED, RUN_STATE
from ..ledger.book import Snapshot
from ..ledger.recovery import recover
from ..ledger.seeded import publish_seeded
from ..reader.process import Reader, boot_to_wall_ns
from ..records import catalog
from ..records.containers import ContainerResolver
from .exclusion import Exclusion
from .metrics import Health, MetricsServer, Page
from .pool import ReaderPool, ReaderSlot, cpu_seconds
from .registration import register_schemas
from .spooldir import SpoolDir

log = structlog.get_logger("supervisor")


class Supervisor:
    def __init__(self, cfg: Config, duration_s: float | None = None) -> None:
        self.cfg = cfg
        self.duration_s = duration_s
        self.host = cfg.hostname
        self.boot_id = cpus_mod.boot_id()
        self.run_id = str(uuid.uuid4())
        self.started_us = time.time_ns() // 1000
        self._stop = False
        self._stop_reason = ""
        self._wake_r, self._wake_w = os.pipe()
        self.health = Health()
        self.page = Page(self.health)
        self.metrics: MetricsServer | None = None
        self.spooldir = SpoolDir.disabled(self.health)

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

    def _wait(self, timeout: float) -> None:
        with contextlib.suppress(InterruptedError):
            select.select([self._wake_r], [], [], timeout)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 512):
                pass

    # -- run -----------------------------------------------------------------------------------

    def run(self) -> int:
        cfg = self.cfg
        self._install_signals()
        cpus = cpus_mod.online_cpus()
        groups = cpus_mod.cpu_groups(cfg, cpus)  # a config error, so before anything is loaded
        data_plane = self._choose_data_plane()  # native required and unable to run: before any BPF
        # Up before any wait, so /healthz answers and /readyz says not ready while the registry is awaited.
        self._start_metrics()
        schema_ids = register_schemas(cfg, self.health, wait=self._wait, stopping=lambda: self._stop)
        if self._stop:
            log.info("collector_stopped", reason=self._stop_reason, before="bpf_attach")
            if self.metrics is not None:
                self.metrics.stop()
            return 0

        # Before any BPF: a spool.dir held by another collector is a one-line error, and while the
        # scan reads what earlier runs left, nothing is attached that could overflow.
        spooldir = SpoolDir.open(cfg, len(groups), self.health)
        module = BpfModule(cfg)
        module.check_layouts()
        seeded = seed(module, cfg)
        resolver = ContainerResolver()
        filters = Filters(module)
        exclusion = Exclusion(cfg, self.host, filters)
        filter_entries = filters.apply(cfg, exclusion.initial(), resolver)
        streams = catalog.enabled_streams(cfg)
        perf = PerfBuffers(
            module.perf_tables(streams), cpus, cfg.readers.perf_pages, cfg.readers.wakeup_events
        )
        shared = module.shared_rings(streams)
        # inline ancestors: the readers read the process table the kernel keeps (records/ancestry.py)
        procs = (
            proctable.lookup(module.table("ekp_procs"))
            if catalog.BY_NAME["process_exec"].section(cfg).ancestors
            else None
        )
        meta = {
            "run_id": self.run_id,
            "host": self.host,
            "boot_id": self.boot_id,
            "started_us": self.started_us,
        }
        ledger = spooldir.ledger(meta, streams, groups, max(cpus) + 1, shared=[r.type_idx for r in shared])
        kernel = KernelCounters(module, streams)  # before the fork: readers read their final counts too
        # Before attaching, and with a producer gone before the fork: the seeded entries of the
        # processes topic precede every entry the kernel makes (ledger/seeded.py).
        seeded_counts = publish_seeded(
            cfg,
            seeded.processes,
            host=self.host,
            boot_id=self.boot_id,
            boot_to_wall_ns=boot_to_wall_ns(),
            resolver=resolver,
            schema_ids=schema_ids,
        )
        attachment = Attachment(module.bpf)
        attachment.attach()
        self.health.bpf_attached = True
        log.info(
            "collector_started",
            host=self.host,
            event_types=[e.name for e in streams],
            readers=len(groups),
            cpu_groups=[list(g) for g in groups],
            seeded=seeded.counts,
            filter_entries=filter_entries,
            excluded_broker_pids=sorted(exclusion.broker_pids),
            perf_pages=cfg.readers.perf_pages,
            wakeup_events=cfg.readers.wakeup_events,
        )

        supervisor_pid = os.getpid()

        def reader_main(slot: ReaderSlot, drain_only: bool) -> None:
            """In the forked child: let go of the supervisor's resources, then be the reader."""
            try:
                signal.set_wakeup_fd(-1)
                os.close(self._wake_r)
                os.close(self._wake_w)
                attachment.forget_in_child()
                if self.metrics is not None:
                    self.metrics.httpd.socket.close()
                structlog.contextvars.bind_contextvars(reader=slot.index)
            except BaseException:
                os._exit(71)
            Reader(
                slot.index,
                slot.cpus,
                cfg,
                perf,
                ledger.arena,
                self.host,
                self.boot_id,
                supervisor_pid=supervisor_pid,
                drain_only=drain_only,
                schema_ids=schema_ids,
                shared=shared,
                procs=procs,
                data_plane=data_plane.active,
                run_id=self.run_id,
                read_kernel=kernel.read,
            ).main()

        pool = ReaderPool(cfg, groups, reader_main, ledger, exclusion, self.health)
        pool.start()
        # After the first fork on purpose: librdkafka must not be forked
        # (later forks of replacement readers never touch this producer).
        accounting = Accounting(
            cfg,
            ledger,
            kernel,
            module,
            host=self.host,
            boot_id=self.boot_id,
            resolver=resolver,
            schema_ids=schema_ids,
            run_id=self.run_id,
            started_us=self.started_us,
            on_watcher_pid=exclusion.watcher,
            seeded=seeded_counts,
        )
        if spooldir.root is not None:  # the final reports earlier runs could not publish, before ours
            recover(cfg, spooldir.root, self.run_id, accounting.publisher, schema_ids, spooldir.found.ends)
        self.spooldir = spooldir
        self._start_health_thread(accounting.publisher)
        self._loop(pool, accounting, exclusion)
        return self._shutdown(attachment, pool, accounting)

    def _loop(self, pool: ReaderPool, accounting: Accounting, exclusion: Exclusion) -> None:
        deadline = time.monotonic() + self.duration_s if self.duration_s else None
        interval = self.cfg.accounting.interval_s
        next_report = time.monotonic() + interval
        next_page = 0.0
        while not self._stop:
            self._wait(0.2)
            now = time.monotonic()
            pool.reap(now)
            if not self._stop:
                pool.restart_due(now)
            if deadline is not None and now >= deadline:
                self._stop, self._stop_reason = True, "duration"
            accounting.tick(now)
            if now >= next_report:
                exclusion.refresh_broker()
                self._report(pool, accounting, final=False)
                next_report = now + interval
            if now >= next_page:
                self._store_page(pool, accounting.snapshot())
                next_page = now + 1.0

    def _report(self, pool: ReaderPool, accounting: Accounting, *, final: bool) -> None:
        accounting.publish(final=final, cpu_seconds=pool.cpu_seconds(), restarts=self.health.reader_restarts)
        self._count_reports(accounting)

    def _count_reports(self, accounting: Accounting) -> None:
        stats = accounting.reporter.stats
        self.health.reports_published, self.health.reports_failed = stats.published, stats.failed

    def _store_page(self, pool: ReaderPool, snap: Snapshot) -> None:
        self.health.cpu_seconds = pool.cpu_seconds()
        self.spooldir.observe(snap)
        self.page.store(snap)

    def _start_metrics(self) -> None:
        if not self.cfg.metrics.listen:
            return
        host, port = parse_listen(self.cfg.metrics.listen)
        try:
            self.metrics = MetricsServer(host, port, self.page)
        except OSError as e:
            log.error("metrics_listen_failed", listen=self.cfg.metrics.listen, error=e.strerror)
            return
        self.health.cpu_seconds = cpu_seconds([])
        self.metrics.start()
        log.info("metrics_listening", address=f"{host}:{self.metrics.port}")

    def _choose_data_plane(self) -> native.Choice:
        """Native or Python readers: decided once. An auto that falls back says so in one warning."""
        choice = native.select(self.cfg)
        self.health.data_plane = choice.active
        say = log.warning if choice.fallback else log.info
        say(
            "data_plane", active=choice.active, wanted=choice.wanted, reason=choice.reason, lib=choice.library
        )
        return choice

    def _start_health_thread(self, publisher: Publisher) -> None:
        # Never logs: a lock held by this thread at a fork would be held forever in the child.
        def probe() -> None:
            while not self._stop:
                self.health.kafka_reachable = publisher.reachable()
                time.sleep(5.0)

        self.health.kafka_reachable = publisher.reachable()
        threading.Thread(target=probe, name="kafka-health", daemon=True).start()

    # -- shutdown ------------------------------------------------------------------------------

    def _shutdown(self, attachment: Attachment, pool: ReaderPool, accounting: Accounting) -> int:
        t0 = time.monotonic()
        timeout = self.cfg.shutdown.timeout_s
        log.info("collector_stopping", reason=self._stop_reason, timeout_s=timeout)
        # Detach before telling readers, so that their final drain is final.
        attachment.detach()
        arena = accounting.ledger.arena
        arena.words[arena.run_word(RUN_STATE)] = DETACHED  # readers: their drain may start at once
        self.health.bpf_attached = False
        pool.stop(t0 + max(1.0, timeout - 0.5), self._wait)
        snap = accounting.close(
            t0 + timeout, cpu_seconds=pool.cpu_seconds(), restarts=self.health.reader_restarts
        )
        self._count_reports(accounting)
        self._store_page(pool, snap)
        if self.metrics is not None:
            self.metrics.stop()
        log.info("collector_stopped", seconds=round(time.monotonic() - t0, 2))
        return 0
