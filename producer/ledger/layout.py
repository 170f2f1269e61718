"""Where each region of the arena lies, and the arena file's self-description.

An arena file starts with a JSON page (b"EKPARENA", a length, then JSON: the run's identity, the
event types, the reader groups, the earlier runs of the replay table and the dimensions below) so the
next start can read a dead run's counts without knowing its config. The words follow, in this order:

    counters   (readers + 1) x types x cpus x reasons   the last slot: folded in from dead readers
    crash      types x cpus                             reader_crash, counted by the supervisor
    journal    types x cpus x 5                         Journal / settle_journal
    reader     readers x N_READER_WORDS                 ack journal, spool state, closed flags
    kernel     types x cpus x 4                         the kernel's counters, as last read
    replay     (readers + 1) x runs x replay_types x replay_reasons
    run        N_RUN_WORDS                              state, report_seq, cpu time, restarts
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_MAGIC = b"EKPARENA"
_FIXED = struct.Struct("<8sII")  # magic, JSON length, words taken by the meta page(s)
_PAGE = 4096
# Kept in step with arena.py (imported there, so no cycle here).
_READER_WORDS = 13
_RUN_WORDS = 5
_KERNEL_FIELDS = 4


@dataclass(frozen=True)
class Layout:
    readers: int
    types: int
    cpus: int
    runs: int
    replay_types: int
    reasons: int
    replay_reasons: int
    meta_words: int = field(default=0)

    @property
    def dims(self) -> dict[str, int]:
        return {
            "readers": self.readers,
            "types": self.types,
            "cpus": self.cpus,
            "runs": self.runs,
            "replay_types": self.replay_types,
        }

    @property
    def crash(self) -> int:
        return (self.readers + 1) * self.types * self.cpus * self.reasons

    @property
    def journal(self) -> int:
        return self.crash + self.types * self.cpus

    @property
    def reader(self) -> int:
        return self.journal + self.types * self.cpus * 5

    @property
    def kernel(self) -> int:
        return self.reader + self.readers * _READER_WORDS

    @property
    def replay(self) -> int:
        return self.kernel + self.types * self.cpus * _KERNEL_FIELDS

    @property
    def run(self) -> int:
        return self.replay + (self.readers + 1) * self.runs * self.replay_types * self.replay_reasons

    @property
    def counted_words(self) -> int:
        return self.run + _RUN_WORDS

    @property
    def words(self) -> int:
        """All words of the mapping, the meta page(s) included."""
        return self.meta_words + self.counted_words


def _meta_bytes(layout: Layout, meta: dict[str, Any], words: int) -> bytes:
    body = json.dumps({**meta, "dims": layout.dims}, sort_keys=True).encode()
    return _FIXED.pack(_MAGIC, len(body), words) + body


def meta_words(meta: dict[str, Any], layout: Layout) -> int:
    """Words the meta page(s) of `meta` take: whole pages, so the counters stay page-aligned."""
    n = len(_meta_bytes(layout, meta, 0))
    return ((n + _PAGE - 1) // _PAGE) * _PAGE // 8


def write_meta(fd: int, layout: Layout, meta: dict[str, Any]) -> None:
    data = _meta_bytes(layout, meta, layout.meta_words)
    assert len(data) <= 8 * layout.meta_words, "meta_words was computed for other meta"
    os.pwrite(fd, data, 0)


def read_meta(path: Path) -> tuple[dict[str, Any], int]:
    """The JSON page of an arena file and the words it takes; raises OSError, or ValueError."""
    with path.open("rb") as f:
        fixed = f.read(_FIXED.size)
        if len(fixed) < _FIXED.size:
            raise ValueError(f"{path}: not an arena file")
        magic, n, words = _FIXED.unpack(fixed)
        if magic != _MAGIC:
            raise ValueError(f"{path}: not an arena file")
        meta: dict[str, Any] = json.loads(f.read(n))
    return meta, words
