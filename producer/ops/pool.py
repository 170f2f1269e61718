"""The readers: one forked process per CPU group, restarted with backoff, stopped with a deadline.

A reader that dies is retired in the ledger (its unresolved messages become reader_crash, and the
journal tells its successor which record to skip) and restarted after an exponential backoff; the
others never notice. At stop, a reader that is dead at that moment is started anyway, just to drain
its rings; readers still alive at the deadline are killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import structlog

from ..config import Config
from ..kernel import procfs
from ..ledger.book import Ledger
from ..reader.process import STOP_SIGNAL
from .exclusion import Exclusion
from .metrics import Health

log = structlog.get_logger("supervisor")

# A reader that stayed up this long is healthy again: its backoff resets.
_STABLE_S = 60.0
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


# Runs in the forked child as reader `slot` (drain_only: just empty its rings); never returns.
ChildMain = Callable[[ReaderSlot, bool], None]


class ReaderPool:
    def __init__(
        self,
        cfg: Config,
        groups: Sequence[tuple[int, ...]],
        child: ChildMain,
        ledger: Ledger,
        exclusion: Exclusion,
        health: Health,
    ) -> None:
        self.cfg = cfg
        self.slots = [ReaderSlot(i, g) for i, g in enumerate(groups)]
        self._child = child
        self.ledger = ledger
        self.exclusion = exclusion
        self.health = health
        health.readers_total = len(self.slots)

    def start(self) -> None:
        for slot in self.slots:
            self._spawn(slot)

    def pids(self) -> list[int]:
        return [s.pid for s in self.slots if s.pid]

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pids())

    def _spawn(self, slot: ReaderSlot, *, drain_only: bool = False) -> None:
        # Block the stop signal across fork: the child unblocks it once its handler is set.
        signal.pthread_sigmask(signal.SIG_BLOCK, {STOP_SIGNAL})
        pid = os.fork()
        if pid == 0:  # child
            try:
                self._child(slot, drain_only)
            finally:
                os._exit(72)  # pragma: no cover - the child's main never returns
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {STOP_SIGNAL})
        slot.pid = pid
        slot.started = time.monotonic()
        self.exclusion.reader_started(pid)
        self.health.readers_alive = len(self.pids())

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

    def reap(self, now: float) -> None:
        """Retire the readers that died; each restarts after its backoff (restart_due)."""
        for slot, status in self._reaped():
            self._gone(slot)
            crashed = self.ledger.retire(slot.index)
            if now - slot.started >= _STABLE_S:
                slot.failures = 0
            slot.failures += 1
            r = self.cfg.readers
            backoff = min(r.restart_backoff_max_s, r.restart_backoff_initial_s * 2 ** (slot.failures - 1))
            slot.restart_at = now + backoff
            log.warning(
                "reader_died",
                reader=slot.index,
                cpus=list(slot.cpus),
                status=describe(status),
                reader_crash=crashed,
                restart_in_s=round(backoff, 2),
            )

    def restart_due(self, now: float) -> None:
        for slot in self.slots:
            if slot.pid == 0 and now >= slot.restart_at:
                slot.restarts += 1
                self.health.reader_restarts += 1
                self._spawn(slot)
                log.info("reader_restarted", reader=slot.index, pid=slot.pid, restarts=slot.restarts)

    def stop(self, deadline: float, wait: Callable[[float], None]) -> None:
        """Ask every reader to drain, flush and leave; kill those still there at `deadline` (monotonic).

        Call after the programs are detached, so that the readers' drain is final.
        """
        for slot in self.slots:
            if not slot.pid:  # dead and waiting out its backoff: its rings still need a final drain
                self._spawn(slot, drain_only=True)
                log.info("reader_started_for_drain", reader=slot.index, pid=slot.pid)
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, STOP_SIGNAL)
        while self.pids() and time.monotonic() < deadline:
            wait(0.1)
            for slot, status in self._reaped():
                self._stopped(slot, status)
        for slot in self.slots:
            if slot.pid:
                log.warning("reader_killed", reader=slot.index, reason="shutdown.timeout_s exceeded")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signal.SIGKILL)
                _, status = os.waitpid(slot.pid, 0)
                self._stopped(slot, status)

    def _stopped(self, slot: ReaderSlot, status: int) -> None:
        self._gone(slot)
        if os.waitstatus_to_exitcode(status) != 0:
            crashed = self.ledger.retire(slot.index)
            log.warning("reader_died", reader=slot.index, status=describe(status), reader_crash=crashed)

    def _gone(self, slot: ReaderSlot) -> None:
        self.exclusion.forget(slot.pid)
        slot.pid = 0
        self.health.readers_alive = len(self.pids())


def describe(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"exit {code}"


def cpu_seconds(pids: Sequence[int]) -> float:
    """CPU time of this process, of `pids` (live readers) and of the children already reaped."""
    ticks = sum(procfs.cpu_ticks(pid) for pid in [os.getpid(), *pids])
    t = os.times()
    return ticks / _CLK_TCK + t.children_user + t.children_system
