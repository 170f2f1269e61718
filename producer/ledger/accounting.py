"""The supervisor's books: ledger snapshots, the drop reports, the syscall_counts aggregate and
<prefix>.containers.

Made after the first readers forked (its Publisher is a librdkafka producer, which must not be
forked). Its last act at shutdown, `close`, publishes the final report and logs one `ledger_final`
line per event type, so a broker outage cannot hide the final numbers.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping

import structlog

from ..config import Config
from ..kafka.publisher import Publisher
from ..kernel.build import BpfModule
from ..kernel.counters import KernelCounters
from ..records import catalog
from ..records.containers import ContainerResolver
from ..records.syscall_counts import MAP as SYSCALL_MAP
from .aggregate import SyscallCounts
from .arena import CPU_MILLIS, FINAL, REPORT_SEQ, RESTARTS, RUN_STATE
from .book import KernelCounts, Ledger, Snapshot
from .containers import ContainersTopic
from .recovery import log_lines
from .report import Reporter
from .seeded import SeededCounts

log = structlog.get_logger("supervisor")

_SYSCALL_COUNTS = catalog.BY_NAME["syscall_counts"]
_PROCESSES = "processes"


class Accounting:
    def __init__(
        self,
        cfg: Config,
        ledger: Ledger,
        kernel: KernelCounters,
        module: BpfModule,
        *,
        host: str,
        boot_id: str,
        resolver: ContainerResolver,
        schema_ids: Mapping[str, int],
        run_id: str,
        started_us: int,
        on_watcher_pid: Callable[[int, bool], None] = lambda _pid, _alive: None,
        seeded: SeededCounts | None = None,
    ) -> None:
        self.ledger = ledger
        self.kernel = kernel
        self.seeded = seeded
        self.publisher = Publisher(cfg.kafka, f"ebpf-producer-{host}-supervisor")
        self.reporter = Reporter(
            cfg, ledger, self.publisher, host, boot_id, schema_ids, run_id=run_id, started_us=started_us
        )
        self.containers: ContainersTopic | None = None
        if cfg.k8s.enabled:
            self.containers = ContainersTopic(cfg, self.publisher, host, schema_ids, on_pid=on_watcher_pid)
            self.containers.start()
        self.syscalls: SyscallCounts | None = None
        if _SYSCALL_COUNTS.enabled(cfg):
            self.syscalls = SyscallCounts(
                cfg,
                module.table(SYSCALL_MAP),
                self.publisher,
                host,
                boot_id,
                resolver,
                _SYSCALL_COUNTS.section(cfg).interval_s,
                schema_ids,
                k8s_of=self.containers.k8s_of if self.containers is not None else lambda _cid: None,
            )

    def snapshot(self) -> Snapshot:
        snap = self.ledger.snapshot(self.kernel.read)
        if self.syscalls is not None:
            # the map total is read after the kernel counters of the streams; its own
            # submit_failed is read after the map, so in_flight stays >= 0
            counted = self.syscalls.read()
            c = self.syscalls.counts
            snap.add_aggregate(
                _SYSCALL_COUNTS.name,
                self.kernel.total(_SYSCALL_COUNTS),
                counted,
                c.delivered,
                c.failed,
                c.shutdown,
            )
        if self.containers is not None:
            self.containers.add_to(snap)
        if self.seeded is not None and self.seeded.seen:
            # the processes alive at start: published before the readers forked, answered since
            s = self.seeded
            snap.add_aggregate(_PROCESSES, KernelCounts(0, 0, 0), s.seen, s.delivered, s.failed, 0)
        return snap

    def tick(self, now: float) -> None:
        """In the supervisor's loop: the aggregate when due, and delivery reports."""
        if self.syscalls is not None and now >= self.syscalls.next_due:
            self.syscalls.publish()
        if self.containers is not None:
            self.containers.tick(now)
        self.publisher.poll()

    def publish(self, *, final: bool, cpu_seconds: float, restarts: int) -> Snapshot:
        """A drop report of a fresh snapshot; returns the snapshot.

        The run's words in the arena follow, so a recovery numbers and fills the dead run's last report
        as this run would have. The final report, once acknowledged, ends the arena file's use.
        """
        snap = self.snapshot()
        arena = self.ledger.arena
        record = self.reporter.record(snap, final=final, cpu_seconds=cpu_seconds, restarts=restarts)
        if final:
            arena.words[arena.run_word(RUN_STATE)] = FINAL
        self.reporter.publish(record, on_delivered=self._final_delivered if final else None)
        w = arena.words
        w[arena.run_word(REPORT_SEQ)] = self.reporter.next_seq
        w[arena.run_word(CPU_MILLIS)] = int(cpu_seconds * 1000)
        w[arena.run_word(RESTARTS)] = restarts
        arena.sync()
        return snap

    def _final_delivered(self) -> None:
        path = self.ledger.arena.path
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()

    def close(self, deadline: float, *, cpu_seconds: float, restarts: int) -> Snapshot:
        """After every reader stopped: the last aggregate, the final report, the ledger_final lines.

        `deadline` (monotonic) is the shutdown's; the final report may take up to 4 s past it.
        """
        if self.containers is not None:
            self.containers.stop()
        if self.syscalls is not None:
            # the programs are detached: this reading of the map is the last one
            self.syscalls.publish()
        published = self.syscalls is not None or self.containers is not None
        if published and self.publisher.flush(max(0.5, deadline - 1.0 - time.monotonic())):
            self.publisher.purge()
        if self.syscalls is not None:
            self.syscalls.close_books()
        if self.containers is not None:
            self.containers.close_books()
        snap = self.publish(final=True, cpu_seconds=cpu_seconds, restarts=restarts)
        left = self.publisher.flush(min(4.0, max(1.0, deadline + 4.0 - time.monotonic())))
        log_lines(snap)
        if left:
            log.warning("final_report_undelivered", reports=left, hint="the ledger_final lines above hold it")
        return snap
