"""A perf ring buffer in memory, laid out as the kernel lays one out, for the native engine's unit tests.

A memfd of one header page + data pages: the engine maps it exactly as it maps a perf event's
ring (mmap of the fd, data_head/data_tail in the header page), and reads the records this
writes as if the kernel had written them.
"""

from __future__ import annotations

import mmap
import os
import struct

PAGE = mmap.PAGESIZE
# struct perf_event_mmap_page (linux/perf_event.h)
DATA_HEAD, DATA_TAIL = 1024, 1032
PERF_RECORD_LOST, PERF_RECORD_SAMPLE = 2, 9
_U64 = struct.Struct("<Q")


class MemRing:
    def __init__(self, pages: int = 1, start: int = 0) -> None:
        self.pages = pages
        self.size = pages * PAGE
        self.fd = os.memfd_create("ekp-test-ring")
        os.ftruncate(self.fd, (pages + 1) * PAGE)
        self.mm = mmap.mmap(self.fd, (pages + 1) * PAGE)
        self.head = start
        self._set(DATA_HEAD, start)
        self._set(DATA_TAIL, start)

    def _set(self, offset: int, value: int) -> None:
        self.mm[offset : offset + 8] = _U64.pack(value)

    @property
    def tail(self) -> int:
        return int(_U64.unpack_from(self.mm, DATA_TAIL)[0])

    def set_tail(self, position: int) -> None:
        """Move the read position, as a reader that died before releasing a record leaves it."""
        self._set(DATA_TAIL, position)

    def write(self, record: bytes) -> None:
        """Append one record at data_head (wrapping at the end of the data pages) and publish it."""
        at = self.head % self.size
        first = min(len(record), self.size - at)
        self.mm[PAGE + at : PAGE + at + first] = record[:first]
        self.mm[PAGE : PAGE + len(record) - first] = record[first:]
        self.head += len(record)
        self._set(DATA_HEAD, self.head)

    def sample(self, raw: bytes) -> int:
        """A PERF_RECORD_SAMPLE carrying `raw` (padded to 8 bytes, as perf does); returns its position."""
        at = self.head
        size = (8 + 4 + len(raw) + 7) & ~7
        body = struct.pack("<IHHI", PERF_RECORD_SAMPLE, 0, size, len(raw)) + raw
        self.write(body.ljust(size, b"\0"))
        return at

    def lost(self, count: int) -> None:
        self.write(struct.pack("<IHHQQ", PERF_RECORD_LOST, 0, 24, 1, count))

    def close(self) -> None:
        self.mm.close()
        os.close(self.fd)
