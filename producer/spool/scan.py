"""The spool directory at start, in the supervisor, before any BPF is attached (nothing is lost while
it runs): one collector per directory, readers' directories matched to this run's readers, torn tails
cut, and a count of what earlier runs left, per run and event type (the replay table's `found`).

    <spool.dir>/lock         flock'd by the supervisor and, through fork, by its readers: a second
                             collector on the same directory waits for the first one's last process
    <spool.dir>/ledger/      arena files (ledger/arena.py)
    <spool.dir>/r<N>/        reader N's segments (store.py)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from ..errors import SpoolError
from .frame import UNKNOWN_TYPE, SegmentHeader
from .segment import Damaged, Lost, Record, Torn, ack_path, seg_path
from .store import FIRST_ID, GAP, Spool, list_segments, reader_dir

log = structlog.get_logger("spool")

SEGMENT_MIN = 64 * 1024
SEGMENT_MAX = 16 * 1024 * 1024


def segment_bytes(per_reader: int) -> int:
    """Segments of at most 16 MiB, and at least four per reader's share: a segment is deleted whole,
    so smaller ones give space back sooner, and bigger ones cost fewer files and fsyncs."""
    return max(SEGMENT_MIN, min(SEGMENT_MAX, per_reader // 4))


@dataclass
class Found:
    """What earlier runs left in the spool, counted the way the readers' replay will meet it."""

    runs: list[str] = field(default_factory=list)  # run ids, in the order first met
    frames: Counter[tuple[str, int]] = field(default_factory=Counter)  # (run, catalog type id)
    torn: Counter[tuple[str, int]] = field(default_factory=Counter)
    # (run, catalog type id, cpu) -> seq + 1 of its last frame: a killed run's recovery (ledger/recovery.py)
    ends: dict[tuple[str, int, int], int] = field(default_factory=dict)
    segments: int = 0
    bytes: int = 0


def lock(root: Path, wait_s: float, sleep: Callable[[float], None] = time.sleep) -> int:
    """Take the directory's lock (waiting up to wait_s for a previous collector's last reader to
    leave); returns the fd, which must stay open for the run. Raises SpoolError."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / "lock", os.O_RDWR | os.O_CREAT, 0o600)  # inherited by the readers on purpose
    end = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= end:
                os.close(fd)
                raise SpoolError(
                    f"spool.dir {root} is in use by another collector (still running after {wait_s:.0f} s); "
                    "give each collector its own spool.dir"
                ) from None
            sleep(0.2)


def adopt_orphans(root: Path, readers: int) -> int:
    """Segments of readers this run does not have (fewer readers than before) go in front of the
    segments of reader N % readers. Returns the segments moved."""
    moved = 0
    orphans: dict[int, list[Path]] = {}
    for d in sorted(root.glob("r*")):
        if d.is_dir() and d.name[1:].isdigit() and int(d.name[1:]) >= readers:
            orphans.setdefault(int(d.name[1:]) % readers, []).append(d)
    for target, dirs in orphans.items():
        to = reader_dir(root, target)
        to.mkdir(parents=True, exist_ok=True)
        own = list_segments(to)
        incoming = [p for d in dirs for _, p in list_segments(d)]
        next_id = (own[0][0] if own else FIRST_ID) - GAP * (len(incoming) + 1)
        for p in incoming:
            dst = seg_path(to, next_id)
            os.rename(p, dst)
            with contextlib.suppress(FileNotFoundError):
                os.rename(ack_path(p), ack_path(dst))
            next_id += GAP
            moved += 1
        for d in dirs:
            for leftover in d.glob("*.ack"):
                leftover.unlink()
            with contextlib.suppress(OSError):
                d.rmdir()
    return moved


def scan(root: Path, readers: int) -> Found:
    """Count and tidy what earlier runs left; the replay (reader/spooling.py) meets exactly this."""
    found = Found()
    adopted = adopt_orphans(root, readers)
    for r in range(readers):
        d = reader_dir(root, r)
        if not d.is_dir():
            continue
        dummy = SegmentHeader("", "", "", r, 0)
        spool = Spool(d, dummy, max_bytes=1 << 62, segment_bytes=SEGMENT_MAX)
        while (item := spool.next_entry()) is not None:
            seg, e = item
            run = seg.header.run_id
            if run not in found.runs:
                found.runs.append(run)
            if isinstance(e, Torn):
                spool.cut(seg, e)
                found.torn[(run, e.head.type_id if e.head is not None else UNKNOWN_TYPE)] += 1
                continue
            seg.unsettled += 1  # keeps the segment: it holds something to replay
            if isinstance(e, Record | Damaged):
                found.frames[(run, e.head.type_id)] += 1
                end = (run, e.head.type_id, e.head.cpu)
                found.ends[end] = max(found.ends.get(end, 0), e.head.seq + 1)
            elif isinstance(e, Lost):
                found.frames[(run, UNKNOWN_TYPE)] += e.count
        found.segments += len(spool.segments)
        found.bytes += spool.bytes
        spool.close()
    if found.segments or adopted:
        log.info(
            "spool_found",
            dir=str(root),
            segments=found.segments,
            bytes=found.bytes,
            records=sum(found.frames.values()),
            runs=found.runs,
            torn=sum(found.torn.values()),
            adopted_segments=adopted,
        )
    return found
