"""One reader's spool: its directory of segments, appended at the tail, replayed from the oldest.

    <spool.dir>/r<reader>/<id>.seg   frames (segment.py), ids in file order
    <spool.dir>/r<reader>/<id>.ack   one byte per frame: settled or not

Segment ids leave gaps (GAP) so that a segment can be put *between* two others: at shutdown, the
records librdkafka still held go in front of the frames spooled after them (insert_before), and the
supervisor puts the directories of readers that no longer exist in front of a reader's own (scan.py).

What the spool holds counts against `max_bytes` (spool.max_bytes, shared by all readers) until the
last frame of a segment is settled and the segment is deleted. The readers share the budget rather
than splitting it: reader 0 also spools the processes ring of every CPU, about as much again as its own
rings, so an even split left it full while the others' halves sat empty. Each reader sees what the
others hold as they last published it (`others`, refreshed at each sync and each new segment), so the
total can pass max_bytes by what the readers write in one fsync interval, no more. A write the disk
refuses (full, read-only, I/O error) is refused like a full spool, logged, and retried a second later.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog

from .frame import HEAD_SIZE, SegmentHeader
from .segment import (
    AckFile,
    Damaged,
    Dedup,
    Entry,
    Lost,
    Record,
    SegmentReader,
    SegmentWriter,
    Torn,
    ack_path,
    frames_capacity,
    seg_id_of,
    seg_path,
)

log = structlog.get_logger("spool")

GAP = 1 << 16
FIRST_ID = 1 << 40
_RETRY_S = 1.0


@dataclass(eq=False)
class Segment:
    id: int
    path: Path
    header: SegmentHeader
    size: int
    reader: SegmentReader | None = None
    ack: AckFile | None = None
    unsettled: int = 0  # frames handed to Kafka (or counted by the scan) not settled yet
    walked: bool = False  # the replay has passed its last frame

    def open(self) -> None:
        if self.reader is None:
            self.reader = SegmentReader(self.path)
        if self.ack is None:
            self.ack = AckFile.open_or_create(ack_path(self.path), frames_capacity(max(self.size, 1)))

    def settle(self, ordinal: int) -> None:
        assert self.ack is not None
        self.ack.settle(ordinal)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        if self.ack is not None:
            self.ack.flush()
            self.ack.close()
            self.ack = None


def reader_dir(root: Path, reader: int) -> Path:
    return root / f"r{reader}"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    out = [(i, p) for p in directory.glob("*.seg") if (i := seg_id_of(p)) is not None]
    return sorted(out)


class Spool:
    """A reader's spool. Not thread-safe; the reader's loop and its callbacks use it."""

    def __init__(
        self,
        directory: Path,
        identity: SegmentHeader,
        *,
        max_bytes: int,
        segment_bytes: int,
        others: Callable[[], int] = lambda: 0,
    ) -> None:
        self.dir = directory
        self.identity = identity  # run, host, boot and reader stamped on the segments it writes
        self.max_bytes = max_bytes
        self.others = others  # bytes the other readers' spools hold, as they last published them
        self.limit = max_bytes  # max_bytes less what the others hold: refresh_limit()
        self.segment_bytes = segment_bytes
        self.segments: list[Segment] = []
        self.writer: SegmentWriter | None = None
        self.writer_seg: Segment | None = None
        self.boundary: Segment | None = None  # first segment written since the last switch to spooling
        self._boundary_next = False
        self.bytes = 0
        self.refusing_until = 0.0
        self.write_errors = 0
        self.dedup = Dedup()
        directory.mkdir(parents=True, exist_ok=True)
        for seg_id, path in list_segments(directory):
            try:
                r = SegmentReader(path)
            except (OSError, ValueError) as e:
                log.warning("spool_segment_unreadable", path=str(path), error=str(e))
                continue
            header = r.header
            r.close()
            size = path.stat().st_size
            self.segments.append(Segment(seg_id, path, header, size))
            self.bytes += size

    # -- writing ---------------------------------------------------------------------------------

    def append(self, type_id: int, cpu: int, seq: int, env: bytes, env_crc: int, value: bytes) -> bool:
        """Append one record; False when it does not fit (max_bytes) or the disk refused it."""
        size = HEAD_SIZE + len(env) + len(value)
        if self.bytes + size > self.limit:
            return False
        if self.refusing_until:  # the disk refused a moment ago: not every record should try again
            if time.monotonic() < self.refusing_until:
                return False
            self.refusing_until = 0.0
        w = self.writer
        if w is None or w.full or (w.offset + size > self.segment_bytes and w.ordinal):
            w = self._roll()
            if w is None:
                return False
        try:
            w.append(type_id, cpu, seq, env, env_crc, value)
        except OSError as e:
            self._refuse(e)
            return False
        assert self.writer_seg is not None
        self.writer_seg.size += size
        self.bytes += size
        return True

    def _roll(self, seg_id: int | None = None) -> SegmentWriter | None:
        """Seal the segment being written (fsync) and start a new one at the tail (or at `seg_id`)."""
        self.seal()
        self.refresh_limit()
        new_id = seg_id if seg_id is not None else self._next_id()
        path = seg_path(self.dir, new_id)
        identity = SegmentHeader(**{**self.identity.__dict__, "created_us": time.time_ns() // 1000})
        try:
            self.writer = SegmentWriter(path, identity, frames_capacity(self.segment_bytes))
        except OSError as e:
            self._refuse(e)
            return None
        seg = Segment(new_id, path, identity, self.writer.offset)
        self.bytes += seg.size
        self.segments.append(seg)
        self.segments.sort(key=lambda s: s.id)
        self.writer_seg = seg
        if self._boundary_next:
            self.boundary, self._boundary_next = seg, False
        self._sync_dir()
        return self.writer

    def _next_id(self) -> int:
        return (self.segments[-1].id + GAP) if self.segments else FIRST_ID

    def _refuse(self, e: OSError) -> None:
        self.write_errors += 1
        self.refusing_until = time.monotonic() + _RETRY_S
        if self.write_errors == 1 or self.write_errors % 1000 == 0:
            log.warning(
                "spool_write_failed",
                dir=str(self.dir),
                error=e.strerror or str(e),
                errors=self.write_errors,
                hint="check spool.dir's disk (space, permissions); refused records count as spool_full",
            )

    def start_spooling(self) -> None:
        """The reader stops producing directly: what it writes from now on starts a new segment, so that
        the records librdkafka still holds can later be put right in front of it (insert_before)."""
        self.seal()
        self._boundary_next = True
        self.boundary = None

    def seal(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(OSError):
                self.writer.sync()
            self.writer.close()
            self.writer = None
            self.writer_seg = None

    def insert_segment(self) -> bool:
        """Open a segment for the records librdkafka gave back at shutdown: in front of the boundary
        (frames spooled after them), or at the tail. False if it cannot be created."""
        b = self.boundary if self.boundary in self.segments else None
        if b is None:
            return self._roll() is not None
        i = self.segments.index(b)
        prev_id = self.segments[i - 1].id if i else b.id - GAP
        seg_id = b.id - 1
        if seg_id <= prev_id:
            return self._roll() is not None  # no room left between them (cannot happen with GAP ids)
        return self._roll(seg_id) is not None

    def refresh_limit(self) -> None:
        self.limit = self.max_bytes - self.others()

    def sync(self) -> None:
        """fsync the segment being written and the acks of those being replayed."""
        self.refresh_limit()
        if self.writer is not None:
            try:
                self.writer.sync()
            except OSError as e:
                self._refuse(e)
        for seg in self.segments:
            if seg.ack is not None:
                seg.ack.flush()

    def _sync_dir(self) -> None:
        with contextlib.suppress(OSError):
            fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # -- replay ----------------------------------------------------------------------------------

    def has_unsent(self) -> bool:
        for seg in self.segments:
            if seg.walked:
                continue
            if seg is not self.writer_seg:
                return True
            assert self.writer is not None
            return (seg.reader.next_ordinal if seg.reader is not None else 0) < self.writer.ordinal
        return False

    def next_entry(self) -> tuple[Segment, Entry] | None:
        """The next frame to replay (or damage to count), oldest first; None when all were handed over.

        Frames settled before (by an earlier run or a dead predecessor) and a record written twice in a
        row (Dedup) are settled and skipped here; Lost counts only ordinals not settled before.
        """
        for seg in list(self.segments):  # release() may remove the segment just walked
            if seg.walked:
                continue
            active = seg is self.writer_seg
            try:
                seg.open()
            except (OSError, ValueError) as err:
                log.warning("spool_segment_unreadable", path=str(seg.path), error=str(err))
                seg.walked = True
                continue
            assert seg.reader is not None and seg.ack is not None
            limit = self.writer.offset if active and self.writer is not None else seg.size
            while (e := seg.reader.next(limit, final=not active)) is not None:
                if isinstance(e, Record | Damaged):
                    settled = seg.ack.settled(e.head.ordinal)
                    repeat = self.dedup.repeat(seg.header.run_id, e.head)
                    if settled:
                        continue
                    if repeat and isinstance(e, Record):
                        seg.settle(e.head.ordinal)
                        continue
                    return seg, e
                if isinstance(e, Lost):
                    n = sum(
                        1 for o in range(e.first_ordinal, e.first_ordinal + e.count) if not seg.ack.settled(o)
                    )
                    if n:
                        return seg, Lost(e.first_ordinal, n)
                    continue
                return seg, e  # Torn: the start-up scan cuts these back; one found later is counted
            if active:
                return None  # caught up with the writer
            seg.walked = True
            seg.reader.close()
            seg.reader = None
            self.release(seg)
        return None

    def cut(self, seg: Segment, torn: Torn) -> None:
        """Cut a torn tail off (a crash mid-write): the walk then ends at the last whole frame."""
        try:
            os.truncate(seg.path, torn.offset)
        except OSError as e:
            log.warning("spool_truncate_failed", path=str(seg.path), error=e.strerror)
        self.bytes -= seg.size - torn.offset
        seg.size = torn.offset

    def settle_lost(self, seg: Segment, lost: Lost) -> None:
        for o in range(lost.first_ordinal, lost.first_ordinal + lost.count):
            seg.settle(o)

    def release(self, seg: Segment) -> None:
        """Delete `seg` once the replay passed its end and every frame handed over has its answer."""
        if not seg.walked or seg.unsettled > 0 or seg is self.writer_seg or seg not in self.segments:
            return
        seg.close()
        for p in (seg.path, ack_path(seg.path)):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        self.segments.remove(seg)
        self.bytes -= seg.size
        if seg is self.boundary:
            self.boundary = None

    # -- state -----------------------------------------------------------------------------------

    def oldest_us(self) -> int:
        return self.segments[0].header.created_us if self.segments else 0

    def close(self) -> None:
        self.sync()
        self.seal()
        for seg in self.segments:
            seg.close()
        self._sync_dir()

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments)
