"""spool.dir from the supervisor's side: the lock, the scan of what earlier runs left, the ledger
file of this run, and the spool's numbers for /metrics and /readyz.

A directory that cannot be used (not creatable, not writable) is logged and the run goes on without
it: readers then fall back to counting what Kafka refuses (queue_full), and the ledger lives in
memory only. A directory another collector holds is an error (one line, exit 3), before any BPF.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from ..config import Config
from ..errors import SpoolError
from ..ledger.arena import (
    R_FOUND,
    R_TORN,
    SPOOL_BYTES,
    SPOOL_OLDEST_US,
    SPOOL_REFUSING,
    SPOOL_STATE,
    SPOOLING,
    Arena,
)
from ..ledger.book import Ledger, Snapshot
from ..ledger.recovery import arena_path
from ..records import catalog
from ..records.catalog import EventType
from ..spool.frame import UNKNOWN_TYPE
from ..spool.scan import Found, lock, scan
from ..spool.segment import seg_path, settle_on_disk
from ..spool.store import reader_dir
from .metrics import Health

log = structlog.get_logger("supervisor")


def replay_type_names() -> list[str]:
    """Names by catalog id, for the replay table; the last entry is `unknown` (frames lost whole)."""
    ids = {e.id: e.name for e in catalog.STREAMS}
    return [ids.get(i, f"type_{i}") for i in range(max(ids) + 1)] + ["unknown"]


class SpoolDir:
    def __init__(self, health: Health, root: Path | None = None, found: Found | None = None) -> None:
        self.health = health
        self.root = root  # None: no spool (disabled, or the directory could not be used)
        self.found = found or Found()
        self.lock_fd = -1
        self.arena: Arena | None = None
        health.spool_enabled = root is not None

    @classmethod
    def disabled(cls, health: Health) -> SpoolDir:
        return cls(health)

    @classmethod
    def open(cls, cfg: Config, readers: int, health: Health) -> SpoolDir:
        """Raises SpoolError when another collector holds the directory."""
        if not cfg.spool.enabled:
            return cls(health)
        root = Path(cfg.spool.dir)
        try:
            # a collector killed a moment ago may still have readers draining: wait for them
            fd = lock(root, wait_s=cfg.shutdown.timeout_s + 10.0)
        except SpoolError:
            raise
        except OSError as e:
            log.error("spool_unavailable", dir=str(root), error=e.strerror, hint="make spool.dir writable")
            return cls(health)
        t0 = time.monotonic()
        try:
            found = scan(root, readers)
        except OSError as e:
            log.error("spool_unavailable", dir=str(root), error=e.strerror, hint="make spool.dir writable")
            return cls(health)
        if found.segments:
            log.info("spool_scanned", seconds=round(time.monotonic() - t0, 3))
        d = cls(health, root, found)
        d.lock_fd = fd
        # /metrics must show the earlier runs' spool from the first scrape, not 0 until the first
        # accounting tick: a scraper (or a test) that waits for the spool to drain would stop at once.
        health.spool_records = sum(found.frames.values())
        health.spool_bytes = found.bytes
        return d

    def ledger(
        self,
        meta: Mapping[str, Any],
        streams: Sequence[EventType],
        groups: Sequence[tuple[int, ...]],
        cpus: int,
        *,
        shared: Sequence[int] = (),
    ) -> Ledger:
        """This run's ledger, in a file under ledger/ when the spool directory is usable. `shared`: as
        Ledger's (the types reader 0 reads for every CPU), kept in the file for a recovery."""
        names = replay_type_names()
        runs = list(self.found.runs)
        full = {
            **meta,
            "event_types": [e.name for e in streams],
            "type_ids": [e.id for e in streams],
            "groups": [list(g) for g in groups],
            "shared": list(shared),
            "runs": runs,
            "replay_types": names,
            "spool_dir": str(self.root) if self.root is not None else "",
        }
        arena = None
        path = arena_path(self.root, meta["run_id"]) if self.root is not None else None
        try:
            arena = Arena(
                len(groups), len(streams), cpus, runs=len(runs), replay_types=len(names), path=path, meta=full
            )
        except OSError as e:
            log.error("ledger_file_unavailable", dir=str(self.root), error=e.strerror)
        if arena is None:
            full["spool_dir"] = (
                ""  # without a ledger file, no spool either: a restart could not account for it
            )
            arena = Arena(len(groups), len(streams), cpus, runs=len(runs), replay_types=len(names), meta=full)
        self.arena = arena
        unknown = len(names) - 1
        for (run, type_id), n in self.found.frames.items():
            rt = type_id if type_id < unknown else unknown
            arena.words[arena.replay_base(len(groups), runs.index(run), rt) + R_FOUND] += n
        for (run, type_id), n in self.found.torn.items():
            rt = type_id if type_id < unknown and type_id != UNKNOWN_TYPE else unknown
            arena.words[arena.replay_base(len(groups), runs.index(run), rt) + R_TORN] += n
        return Ledger(
            arena,
            [e.name for e in streams],
            groups,
            shared,
            settle_frame=self._settle if self.root is not None else None,
            replay_types=names,
        )

    def _settle(self, reader: int, seg_id: int, ordinal: int) -> None:
        assert self.root is not None
        settle_on_disk(seg_path(reader_dir(self.root, reader), seg_id), ordinal)

    def observe(self, snap: Snapshot) -> None:
        """The spool's numbers for /metrics and /readyz, from the readers' words in the arena."""
        a, h = self.arena, self.health
        if a is None or self.root is None:
            return
        w = a.words
        rw = a.reader_word
        h.spool_bytes = sum(w[rw(r, SPOOL_BYTES)] for r in range(a.readers))
        oldest = [w[rw(r, SPOOL_OLDEST_US)] for r in range(a.readers) if w[rw(r, SPOOL_OLDEST_US)]]
        h.spool_oldest_age_s = max(0.0, time.time() - min(oldest) / 1e6) if oldest else 0.0
        h.readers_spooling = sum(1 for r in range(a.readers) if w[rw(r, SPOOLING)])
        h.spool_refusing = any(w[rw(r, SPOOL_STATE)] == SPOOL_REFUSING for r in range(a.readers))
        h.spool_records = sum(b.spooled for b in snap.balances.values()) + sum(
            r.in_flight for r in snap.replayed
        )
