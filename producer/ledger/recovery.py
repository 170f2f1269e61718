"""The final report of a run that could not publish its own: killed, or its broker gone at the end.

Its ledger file (`<spool.dir>/ledger/<run_id>.arena`, ledger/arena.py) holds every count it made. A
run that stopped cleanly marked it FINAL; its final report is rebuilt as it was and published with
`recovered: true`. A run left RUNNING was killed, and its report is rebuilt from what it left:

- a reader that closed its books (the supervisor alone was killed: the readers got PR_SET_PDEATHSIG,
  drained, delivered, counted the rest as shutdown) wrote the kernel's final counts of its CPUs too;
  its part of the report is exact.
- a reader killed as well held unanswered messages: reader_crash, as when the supervisor retires a
  dead reader. The kernel's counts of its CPUs are the supervisor's last reading (about a second old),
  or `seq + 1` of the last record the reader counted when that is higher. Whatever that `seen` has
  that no counter explains (records in the perf rings, which died with the collector) is
  reader_crash too: a dead collector holds nothing in flight except its spool.
- a spooling reader appends a record to the spool, then counts it (the journal): killed between the
  two, it leaves a frame beyond the last record it counted. The start-up scan of the spool finds it
  (spool/scan.py `ends`): it is counted spooled, and the kernel saw at least its seq + 1.

Reports go out before the new run's own; a file is deleted once the broker acknowledged its report,
and kept for the next start otherwise (its ledger_final lines are logged each time).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from ..config import Config
from ..kafka.publisher import Publisher
from .arena import (
    CLOSED,
    CPU_MILLIS,
    FINAL,
    IDENTITY_ROWS,
    INFO_REASONS,
    KERNEL_FINAL,
    REPORT_SEQ,
    RESTARTS,
    RUN_STATE,
    SPOOLED,
    Arena,
    pending,
)
from .book import KernelCounts, Ledger, Snapshot, unexplained
from .report import Reporter

log = structlog.get_logger("recovery")


def arena_path(root: Path, run_id: str) -> Path:
    return root / "ledger" / f"{run_id}.arena"


def recovered_snapshot(ledger: Ledger, spool_ends: Mapping[tuple[int, int], int] | None = None) -> Snapshot:
    """`spool_ends`: (type index, cpu) -> seq + 1 of the last frame of this run the spool holds."""
    a = ledger.arena
    w = a.words
    counts = ledger.reader_counts()
    killed = w[a.run_word(RUN_STATE)] != FINAL
    kernel: dict[tuple[int, int], KernelCounts] = {}
    extra_crash: dict[tuple[int, int], int] = {}
    for t, cpu in counts:
        seen, submit_failed, filtered, untracked = a.kernel_counts(t, cpu)
        reader = ledger.owner_of(t, cpu)
        if killed and not w[a.reader_word(reader, KERNEL_FINAL)]:
            counted_end = a.last_seq_end(t, cpu)
            spooled_end = (spool_ends or {}).get((t, cpu), 0)
            if spooled_end > counted_end:  # appended, not counted yet: one record at most (above)
                counts[(t, cpu)][SPOOLED] += 1
            seen = max(seen, counted_end, spooled_end)
        kernel[(t, cpu)] = KernelCounts(seen, submit_failed, filtered, untracked)
        if killed and not w[a.reader_word(reader, CLOSED)]:
            extra_crash[(t, cpu)] = max(0, pending(a.block(reader, t, cpu)))
    if not killed:
        return ledger.build(counts, kernel)
    # In a dead collector only the spool still holds records: the rest of `seen` was lost with it.
    for key, blk in counts.items():
        crash = w[a.crash_index(*key)] + extra_crash.get(key, 0)
        rest = unexplained(blk, kernel[key], crash)
        k = kernel[key]
        if rest > 0:
            extra_crash[key] = extra_crash.get(key, 0) + rest
        elif rest < 0:  # counted more than the stale reading saw: the kernel saw at least that many
            kernel[key] = dataclasses.replace(k, seen=k.seen - rest)
    return ledger.build(counts, kernel, extra_crash)


def recover(
    cfg: Config,
    root: Path,
    own_run_id: str,
    publisher: Publisher,
    schema_ids: Mapping[str, int],
    spool_ends: Mapping[tuple[str, int, int], int] | None = None,
) -> int:
    """Publish the final report of every earlier run whose ledger file is still there; returns how many.
    `spool_ends`: (run, catalog type id, cpu) -> seq + 1 of the last frame the spool holds (scan.Found)."""
    published = 0
    for path in sorted((root / "ledger").glob("*.arena")):
        if path.stem == own_run_id:
            continue
        try:
            arena = Arena.open(path)
            snap, rec = _report(cfg, arena, publisher, schema_ids, spool_ends or {})
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("ledger_file_unreadable", path=str(path), error=str(e))
            with contextlib.suppress(OSError):
                path.rename(path.with_suffix(".bad"))
            continue
        rec_reporter, record = rec
        rec_reporter.publish(record, on_delivered=_deleter(path))
        log_lines(snap, run_id=record["run_id"], recovered=True)
        published += 1
        arena.close()
    return published


def _report(
    cfg: Config,
    arena: Arena,
    publisher: Publisher,
    schema_ids: Mapping[str, int],
    spool_ends: Mapping[tuple[str, int, int], int],
) -> tuple[Snapshot, tuple[Reporter, dict[str, Any]]]:
    meta = arena.meta
    ledger = Ledger(
        arena,
        meta["event_types"],
        [tuple(g) for g in meta["groups"]],
        meta.get("shared", ()),
        replay_types=meta["replay_types"],
    )
    run, index = meta["run_id"], {tid: t for t, tid in enumerate(meta.get("type_ids", ()))}
    ends = {(index[tid], cpu): end for (r, tid, cpu), end in spool_ends.items() if r == run and tid in index}
    snap = recovered_snapshot(ledger, ends)
    w = arena.words
    reporter = Reporter(
        cfg,
        ledger,
        publisher,
        meta["host"],
        meta["boot_id"],
        schema_ids,
        run_id=meta["run_id"],
        started_us=meta["started_us"],
        report_seq=w[arena.run_word(REPORT_SEQ)],
        recovered=True,
    )
    record = reporter.record(
        snap,
        final=True,
        cpu_seconds=w[arena.run_word(CPU_MILLIS)] / 1000.0,
        restarts=w[arena.run_word(RESTARTS)],
    )
    return snap, (reporter, record)


def _deleter(path: Path) -> Callable[[], None]:
    def delete() -> None:
        with contextlib.suppress(OSError):
            path.unlink()

    return delete


def log_lines(snap: Snapshot, **extra: Any) -> None:
    """One ledger_final line per event type: the identity, every drop reason summed over CPUs (drop_*),
    and the informational rows under their own names."""
    for b in snap.balances.values():
        # Counts are per CPU: summed here, so one CPU's row cannot hide another's.
        reasons: dict[str, int] = {}
        for (event_type, _cpu, reason, code), v in snap.counts.items():
            if event_type == b.event_type and reason not in IDENTITY_ROWS:
                key = reason if reason in INFO_REASONS else f"drop_{reason}" + (f"_{code}" if code else "")
                reasons[key] = reasons.get(key, 0) + v
        log.info(
            "ledger_final",
            event_type=b.event_type,
            seen=b.seen,
            delivered=b.delivered,
            dropped=b.dropped,
            in_flight=b.in_flight,
            spooled=b.spooled,
            filtered=b.filtered,
            **reasons,
            **extra,
        )
