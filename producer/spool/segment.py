"""One segment: its writer, the walk over its frames (replay and the start-up scan share it), its acks.

Writing: a frame is one os.pwritev into the page cache, so a reader killed at any instruction leaves
either the whole frame or (a kill between two pages of one write) a torn tail that the next start
truncates. A failed or short write is cut back at once (ftruncate to the last whole frame), so a full
disk never leaves damage behind for the frames that follow. Durability against a crash of the machine
is the fsync's job (SegmentWriter.sync, called on roll and every spool.fsync_interval_ms).

Acks: `<id>.ack` beside `<id>.seg` keeps one byte per frame ordinal, mapped MAP_SHARED, set when the
frame's fate is settled (delivered, failed for good, damaged, or a duplicate). Being a file mapping it
survives the reader: a successor, or the next run, never sends a settled frame again.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import DecodeError
from . import frame as fr
from .frame import HEAD_SIZE, Head, SegmentHeader

_CHUNK = 1 << 20


def seg_path(directory: Path, seg_id: int) -> Path:
    return directory / f"{seg_id:016x}.seg"


def ack_path(seg: Path) -> Path:
    return seg.with_suffix(".ack")


def seg_id_of(path: Path) -> int | None:
    try:
        return int(path.stem, 16)
    except ValueError:
        return None


def frames_capacity(size_bytes: int) -> int:
    """An upper bound on the frames a segment of `size_bytes` can hold (a frame is > its 32-byte head)."""
    return size_bytes // HEAD_SIZE + 1


class SegmentWriter:
    """Appends frames to a new segment file; raises OSError when the disk refuses (nothing is left torn)."""

    def __init__(self, path: Path, header: SegmentHeader, capacity: int) -> None:
        self.path = path
        self.capacity = capacity  # frames; the ack file has one byte for each
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            data = header.encode()
            if os.pwrite(self.fd, data, 0) != len(data):
                raise OSError(28, "short write")
            self.offset = len(data)
            AckFile.create(ack_path(path), capacity)
        except OSError:
            self.close()
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        self.ordinal = 0
        self.dirty = False

    def append(self, type_id: int, cpu: int, seq: int, env: bytes, env_crc: int, value: bytes) -> int:
        """Write one frame; returns its size. On any failure the file is cut back and OSError raised."""
        parts = fr.frame_parts(self.ordinal, type_id, cpu, seq, env, env_crc, value)
        size = HEAD_SIZE + len(env) + len(value)
        try:
            # at an explicit offset: after a short write the file position would be past the cut
            written = os.pwritev(self.fd, parts, self.offset)
        except OSError:
            self._cut_back()
            raise
        if written != size:  # a short write (disk full mid-frame): no torn frame may stay behind
            self._cut_back()
            raise OSError(28, "short write")
        self.offset += size
        self.ordinal += 1
        self.dirty = True
        return size

    def _cut_back(self) -> None:
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, self.offset)

    @property
    def full(self) -> bool:
        return self.ordinal >= self.capacity

    def sync(self) -> None:
        if self.dirty:
            os.fdatasync(self.fd)
            self.dirty = False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = -1


class AckFile:
    """One byte per frame ordinal, shared with every process that maps it (and with the next run)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            self._mm = mmap.mmap(fd, size) if size else None
        finally:
            os.close(fd)
        self.size = size

    @staticmethod
    def create(path: Path, capacity: int) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, max(capacity, 1))  # sparse: only the pages of settled frames take room
        finally:
            os.close(fd)

    @classmethod
    def open_or_create(cls, path: Path, capacity: int) -> AckFile:
        if not path.exists():
            cls.create(path, capacity)
        ack = cls(path)
        if ack.size < capacity:  # an older, smaller file (or none): grow it, keeping what it knew
            ack.close()
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            try:
                os.ftruncate(fd, capacity)
            finally:
                os.close(fd)
            ack = cls(path)
        return ack

    def settled(self, ordinal: int) -> bool:
        return self._mm is not None and ordinal < self.size and self._mm[ordinal] != 0

    def settle(self, ordinal: int) -> None:
        if self._mm is not None and ordinal < self.size:
            self._mm[ordinal] = 1

    def flush(self) -> None:
        if self._mm is not None:
            with contextlib.suppress(OSError, ValueError):
                self._mm.flush()

    def close(self) -> None:
        if self._mm is not None:
            with contextlib.suppress(OSError, ValueError, BufferError):
                self._mm.close()
            self._mm = None


def settle_on_disk(seg: Path, ordinal: int) -> None:
    """Mark one frame settled without mapping the file (the supervisor settling a dead reader's journal)."""
    with contextlib.suppress(OSError):
        fd = os.open(ack_path(seg), os.O_WRONLY | os.O_CLOEXEC)
        try:
            if ordinal < os.fstat(fd).st_size:
                os.pwrite(fd, b"\x01", ordinal)
        finally:
            os.close(fd)


# What a walk over a segment meets, in file order.
@dataclass(frozen=True)
class Record:
    head: Head
    env: bytes
    value: bytes


@dataclass(frozen=True)
class Damaged:
    """A frame whose head is readable but whose body is not: counted against its type and CPU."""

    head: Head


@dataclass(frozen=True)
class Lost:
    """Frames whose heads are unreadable: how many (from the ordinals around them) and from which ordinal."""

    first_ordinal: int
    count: int


@dataclass(frozen=True)
class Torn:
    """The end of the segment does not hold a whole frame: a write cut short by a crash."""

    offset: int  # where the last whole frame ends: the file is cut back here
    head: Head | None  # the torn frame's head, when that much was written


Entry = Record | Damaged | Lost | Torn


class SegmentReader:
    """Walks a segment's frames from its first, reading with pread up to a limit that may grow
    (the segment the same reader is still writing) or is the file's size."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._buf = b""
        self._buf_at = 0
        try:
            head = os.pread(self.fd, 64 * 1024, 0)
            self.header, self.offset = SegmentHeader.decode(head)
        except (OSError, DecodeError):
            self.close()
            raise
        self.next_ordinal = 0

    def _window(self, at: int, n: int, limit: int) -> bytes:
        end = min(at + n, limit)
        if at < self._buf_at or end > self._buf_at + len(self._buf):
            self._buf = os.pread(self.fd, max(end - at, _CHUNK), at)[: max(0, limit - at)]
            self._buf_at = at
        return self._buf[at - self._buf_at : end - self._buf_at]

    def next(self, limit: int, *, final: bool) -> Entry | None:
        """The next entry before `limit` (bytes), or None when no whole frame is left before it.

        `final`: nothing more will be written (any segment but the one being written): then a partial
        frame at the end is Torn, and an unreadable stretch with no valid head after it is Torn too.
        """
        at = self.offset
        if at >= limit:
            return None
        head = fr.parse_head(self._window(at, HEAD_SIZE, limit), 0)
        if head is not None and head.ordinal == self.next_ordinal:
            end = at + HEAD_SIZE + head.body_len
            if end > limit:
                return Torn(at, head) if final else None
            body = self._window(at + HEAD_SIZE, head.body_len, limit)
            self.offset = end
            self.next_ordinal += 1
            if fr.crc32c(body) != head.body_crc:
                return Damaged(head)
            try:
                env, value = fr.split_body(body)
            except DecodeError:
                return Damaged(head)
            return Record(head, env, value)
        if not final:
            return None  # our own segment: the writer never leaves damage, so this is the end for now
        if head is not None and head.ordinal > self.next_ordinal:  # frames before it lost whole
            lost = Lost(self.next_ordinal, head.ordinal - self.next_ordinal)
            self.next_ordinal = head.ordinal
            return lost
        # Damage: find the next valid head whose ordinal is ahead of ours.
        found = self._resync(at + 1, limit)
        if found is None:
            return Torn(at, head if head is not None and head.ordinal == self.next_ordinal else None)
        new_at, new_head = found
        lost = Lost(self.next_ordinal, new_head.ordinal - self.next_ordinal)
        self.offset = new_at
        self.next_ordinal = new_head.ordinal
        return lost

    def _resync(self, start: int, limit: int) -> tuple[int, Head] | None:
        at = start
        while at < limit:
            window = self._window(at, _CHUNK, limit)
            i = window.find(fr.MAGIC_BYTES)
            if i < 0:
                at += max(1, len(window) - 3)
                continue
            cand = at + i
            head = fr.parse_head(self._window(cand, HEAD_SIZE, limit), 0)
            if head is not None and head.ordinal > self.next_ordinal:
                return cand, head
            at = cand + 1
        return None

    def walk(self, limit: int | None = None) -> Iterator[Entry]:
        """Every entry of a finished segment (its file size, or `limit`)."""
        end = os.fstat(self.fd).st_size if limit is None else limit
        while (e := self.next(end, final=True)) is not None:
            yield e
            if isinstance(e, Torn):
                return

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class Dedup:
    """A record written twice in a row for one (run, type, CPU): the frame of a reader killed after
    writing it but before counting it, written again by its successor. The second is skipped.

    Only the immediately preceding frame of the same (run, type, CPU) is compared: a successor's first
    record of a ring is exactly the one its predecessor was handling, and records of one CPU may reach
    a ring slightly out of `seq` order, so "seq not above the last" would drop real records.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[str, int, int], int] = {}

    def repeat(self, run_id: str, head: Head) -> bool:
        k = (run_id, head.type_id, head.cpu)
        if self._last.get(k) == head.seq:
            return True
        self._last[k] = head.seq
        return False
