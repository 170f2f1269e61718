"""The readers' half of the drop ledger: counters in shared memory that outlive the readers.

The arena is one MAP_SHARED mapping made before the readers fork: per reader slot, event type and
CPU, one 64-bit word per reason below. Each word has one writer (a reader, or the supervisor while
that reader is dead), so no locks are needed; aligned 8-byte stores are atomic. The supervisor
therefore still knows a reader's exact counts after it was killed.

With a spool directory the mapping is a file (`<spool.dir>/ledger/<run_id>.arena`, layout.py), so
the counts also outlive the supervisor: the next start finds them and publishes the dead run's
final report (ledger/recovery.py). Without one it is anonymous memory, as before.

Beside the counters, a journal per (event type, CPU) makes the counting crash-proof: the reader
journals each count before making it (Journal, the write side) and the supervisor reads the journal
of a dead reader (Arena.settle_journal) to tell its successor which one record it must skip. A second,
per-reader journal does the same for the acknowledgement of a replayed spool frame (AckJournal).
"""

from __future__ import annotations

import dataclasses
import mmap
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .layout import Layout, meta_words, read_meta, write_meta

# Reader-side reasons, in arena order. `produced` (accepted into the producer queue) is bookkeeping:
# produced - delivered - delivery_failed - shutdown - respooled is what a reader holds unresolved in
# librdkafka, which becomes reader_crash if it dies. The spool's words: `spooled` (frames appended),
# `respooled` (unacknowledged at shutdown, moved from librdkafka into the spool), `replay_delivered`
# and the replay_failed slots (a spooled frame's fate once replayed), `spool_corrupt` (found damaged);
# spooled + respooled - replay_delivered - replay_failed - spool_corrupt is what the spool holds.
LOST = 0
DECODE_ERROR = 1
ENCODE_ERROR = 2
QUEUE_FULL = 3
SHUTDOWN = 4
DELIVERED = 5
PRODUCED = 6
ESCAPED = 7
K8S_UNRESOLVED = 8  # info: a pod container's record built before its pod was known (k8s null)
SPOOLED = 9
SPOOL_FULL = 10
SPOOL_CORRUPT = 11
RESPOOLED = 12
REPLAY_DELIVERED = 13
DELIVERY_FAILED = 14  # first of len(DELIVERY_CODES) slots
READER_REASONS = (
    "lost",
    "decode_error",
    "encode_error",
    "queue_full",
    "shutdown",
    "delivered",
    "produced",
    "escaped",
    "k8s_unresolved",
    "spooled",
    "spool_full",
    "spool_corrupt",
    "respooled",
    "replay_delivered",
)

# Kafka error names (confluent_kafka.KafkaError attributes: tests/unit/test_kafka_boundary.py checks
# each exists) that get their own delivery_failed counter; the rest are "other".
DELIVERY_CODES = (
    "_MSG_TIMED_OUT",
    "MSG_SIZE_TOO_LARGE",
    "TOPIC_AUTHORIZATION_FAILED",
    "UNKNOWN_TOPIC_OR_PART",
    "_UNKNOWN_TOPIC",
    "INVALID_RECORD",
    "NOT_ENOUGH_REPLICAS",
    "_FATAL",
    "other",
)
CODE_INDEX = {name: i for i, name in enumerate(DELIVERY_CODES)}
REPLAY_FAILED = DELIVERY_FAILED + len(DELIVERY_CODES)  # first of the replayed frames' failure slots
N_REASONS = REPLAY_FAILED + len(DELIVERY_CODES)

DROP_REASONS = (
    "submit_failed",
    "decode_error",
    "encode_error",
    "queue_full",
    "delivery_failed",
    "shutdown",
    "reader_crash",
    "spool_full",
    "spool_corrupt",
)
# The rest of a drop report's rows, no drops. The identity's own terms (`spooled`: written to the spool,
# in flight until its fate is known; Balance.spooled is what the spool still holds), and information
# shown under its own name: `lost` is the user-space view of submit_failed, `escaped` and
# `k8s_unresolved` records were delivered with a caveat, `untracked` processes have no identity.
IDENTITY_ROWS = ("seen", "delivered", "filtered", "spooled")
INFO_REASONS = ("lost", "escaped", "untracked", "k8s_unresolved")

# Per earlier run found in the spool (the replay table), per catalog type: what became of its frames.
R_FOUND = 0  # in the spool when this run started (written by the supervisor's scan)
R_DELIVERED = 1
R_CORRUPT = 2
R_TORN = 3  # informational: a frame cut short by a crash, truncated (its record was never counted)
R_FAILED = 4  # first of len(DELIVERY_CODES) slots
N_REPLAY = R_FAILED + len(DELIVERY_CODES)

# Per reader words (one writer: that reader; the supervisor when it is dead).
(ACK_INTENT, ACK_DONE, ACK_SLOT, ACK_OLD, ACK_SEG, ACK_ORD) = range(6)
SPOOL_BYTES, SPOOL_OLDEST_US, SPOOL_STATE, SPOOLING, CLOSED, KERNEL_FINAL, SPOOL_LOST = range(6, 13)
N_READER_WORDS = 13  # SPOOL_LOST: frames of this run lost with their heads (no type or CPU to count)
SPOOL_OFF, SPOOL_OK, SPOOL_REFUSING = 0, 1, 2  # SPOOL_STATE values

# Run words (the supervisor's).
RUN_STATE, REPORT_SEQ, CPU_MILLIS, RESTARTS, UPDATED_US = range(5)
N_RUN_WORDS = 5
# RUN_STATE: a file left RUNNING (or DETACHED) belongs to a collector that was killed. DETACHED: the
# supervisor detached the programs before it stopped the readers (any other stop is its death).
RUNNING, FINAL, DETACHED = 1, 2, 3

KERNEL_FIELDS = 4  # seen, submit_failed, filtered, untracked


def delivery_slot(error_name: str) -> int:
    return DELIVERY_FAILED + CODE_INDEX.get(error_name, CODE_INDEX["other"])


def replay_slot(error_name: str) -> int:
    """The replayed-frame twin of delivery_slot."""
    return REPLAY_FAILED + CODE_INDEX.get(error_name, CODE_INDEX["other"])


def pending(block: Sequence[int]) -> int:
    """Records a reader handed to Kafka itself (not from the spool) whose fate it has not learned yet."""
    failed = sum(block[DELIVERY_FAILED:REPLAY_FAILED])
    return block[PRODUCED] - block[DELIVERED] - failed - block[SHUTDOWN] - block[RESPOOLED]


def held(block: Sequence[int]) -> int:
    """Records of this run that the spool holds (appended, not yet delivered, failed or found damaged)."""
    resolved = block[REPLAY_DELIVERED] + sum(block[REPLAY_FAILED:N_REASONS]) + block[SPOOL_CORRUPT]
    return block[SPOOLED] + block[RESPOOLED] - resolved


class Arena:
    """Shared counters: per reader slot x event type x CPU x reason, plus journals, the kernel's last
    counts, the replay table of earlier runs and a few words about the run (layout.py)."""

    # Journal words per (type, CPU); see Journal for the write order.
    _DONE, _INTENT, _SLOT, _OLD, _SUSPECT = range(5)

    def __init__(
        self,
        readers: int,
        types: int,
        cpus: int,
        *,
        runs: int = 0,
        replay_types: int = 1,
        path: Path | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.readers, self.types, self.cpus = readers, types, cpus
        layout = Layout(readers, types, cpus, runs, replay_types, N_REASONS, N_REPLAY)
        self.path = path
        self.meta = dict(meta or {})
        if path is None:
            self.layout = layout
            self._mm = mmap.mmap(-1, 8 * layout.words)
        else:
            self.layout = dataclasses.replace(layout, meta_words=meta_words(self.meta, layout))
            self._mm = _file_mapping(path, self.layout, self.meta)
        self.words = memoryview(self._mm).cast("Q")[self.layout.meta_words :]
        self.words[self.layout.run + RUN_STATE] = RUNNING

    @classmethod
    def open(cls, path: Path) -> Arena:
        """An arena file another run left behind (ledger/recovery.py). Raises OSError or ValueError."""
        meta, words = read_meta(path)
        a = cls.__new__(cls)
        dims = meta["dims"]
        a.readers, a.types, a.cpus = dims["readers"], dims["types"], dims["cpus"]
        a.layout = Layout(**dims, reasons=N_REASONS, replay_reasons=N_REPLAY, meta_words=words)
        a.path, a.meta = path, meta
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            if os.fstat(fd).st_size < 8 * a.layout.words:
                raise ValueError(f"{path}: shorter than its layout")
            a._mm = mmap.mmap(fd, 8 * a.layout.words)
        finally:
            os.close(fd)
        a.words = memoryview(a._mm).cast("Q")[a.layout.meta_words :]
        return a

    def sync(self) -> None:
        """Push the counts to disk (a crash of the machine loses what happened since)."""
        if self.path is not None:
            self._mm.flush()

    def base(self, reader: int, type_idx: int, cpu: int) -> int:
        """Index of reason 0 of one (reader, type, cpu) block; add a reason constant to it.
        Reader slot `readers` holds what the supervisor folded in from readers that died."""
        return ((reader * self.types + type_idx) * self.cpus + cpu) * N_REASONS

    @property
    def retired_slot(self) -> int:
        return self.readers

    def crash_index(self, type_idx: int, cpu: int) -> int:
        return self.layout.crash + type_idx * self.cpus + cpu

    def _journal(self, type_idx: int, cpu: int) -> int:
        return self.layout.journal + (type_idx * self.cpus + cpu) * 5

    def journal_indices(self, type_idx: int, cpu: int) -> tuple[int, int, int, int]:
        """(done, intent, slot, old) word indices for a reader's journal."""
        j = self._journal(type_idx, cpu)
        return j + self._DONE, j + self._INTENT, j + self._SLOT, j + self._OLD

    def suspect_index(self, type_idx: int, cpu: int) -> int:
        return self._journal(type_idx, cpu) + self._SUSPECT

    def last_seq_end(self, type_idx: int, cpu: int) -> int:
        """seq + 1 of the last record counted on this (type, CPU): the kernel had seen at least that many."""
        done, intent, _, _ = self.journal_indices(type_idx, cpu)
        return max(self.words[done], self.words[intent])

    def settle_journal(self, type_idx: int, cpu: int) -> None:
        """After a reader died: mark the one record its successor must skip, if any.

        If the dead reader had counted its last record (done == intent, or it
        died after the counter moved), that record may still be in the ring
        and must not be counted again; otherwise it will be read and counted
        by the successor, and nothing is skipped.
        """
        w = self.words
        done, intent, slot, old = self.journal_indices(type_idx, cpu)
        counted = w[intent] != w[done] and w[w[slot]] == w[old] + 1
        w[self.suspect_index(type_idx, cpu)] = w[intent] if counted else w[done]

    def reader_word(self, reader: int, word: int) -> int:
        return self.layout.reader + reader * N_READER_WORDS + word

    def run_word(self, word: int) -> int:
        return self.layout.run + word

    def kernel_index(self, type_idx: int, cpu: int) -> int:
        return self.layout.kernel + (type_idx * self.cpus + cpu) * KERNEL_FIELDS

    def store_kernel(self, type_idx: int, cpu: int, counts: Sequence[int]) -> None:
        """The kernel's (seen, submit_failed, filtered, untracked) of one (type, CPU), as last read."""
        i = self.kernel_index(type_idx, cpu)
        for k, v in enumerate(counts[:KERNEL_FIELDS]):
            self.words[i + k] = v

    def kernel_counts(self, type_idx: int, cpu: int) -> tuple[int, int, int, int]:
        i = self.kernel_index(type_idx, cpu)
        return self.words[i], self.words[i + 1], self.words[i + 2], self.words[i + 3]

    def replay_base(self, reader: int, run: int, replay_type: int) -> int:
        """Reason 0 of one (reader, earlier run, catalog type) row of the replay table.
        Reader slot `readers` holds what the supervisor's scan found (R_FOUND, R_TORN)."""
        lay = self.layout
        return lay.replay + ((reader * lay.runs + run) * lay.replay_types + replay_type) * N_REPLAY

    def block(self, reader: int, type_idx: int, cpu: int) -> list[int]:
        b = self.base(reader, type_idx, cpu)
        return list(self.words[b : b + N_REASONS])

    def zero_reader(self, reader: int) -> None:
        start = self.base(reader, 0, 0)
        end = start + self.types * self.cpus * N_REASONS
        for i in range(start, end):
            self.words[i] = 0

    def close(self) -> None:
        try:
            self.words.release()
            self._mm.close()
        except (BufferError, ValueError):
            pass  # still exported by a memoryview slice somewhere: the mapping ends with the process


def _file_mapping(path: Path, layout: Layout, meta: dict[str, Any]) -> mmap.mmap:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        write_meta(fd, layout, meta)
        os.ftruncate(fd, 8 * layout.words)
        mm = mmap.mmap(fd, 8 * layout.words)
        os.fsync(fd)
        os.rename(tmp, path)
    finally:
        os.close(fd)
    return mm


class Journal:
    """Counts a record's outcome so that a crash at any instruction leaves an exact ledger.

    Four words per (type, CPU): done (last fully handled seq + 1), and the
    intent (seq + 1, counter index, its value before). Written in the order
    counter/old -> intent -> counter += 1 -> done, so the supervisor can tell
    whether the count of the record in hand happened (Arena.settle_journal).
    """

    __slots__ = ("_done", "_intent", "_old", "_slot", "_words")

    def __init__(self, arena: Arena, type_idx: int, cpu: int) -> None:
        self._words = arena.words
        self._done, self._intent, self._slot, self._old = arena.journal_indices(type_idx, cpu)

    def count(self, seq: int | None, counter: int) -> None:
        w = self._words
        if seq is None:  # too short to carry a sequence: it cannot come back as a duplicate we could spot
            w[counter] += 1
            return
        old, nxt = w[counter], seq + 1
        w[self._slot] = counter
        w[self._old] = old
        w[self._intent] = nxt
        w[counter] = old + 1
        w[self._done] = nxt


class AckJournal:
    """Counts a replayed frame's fate and marks it settled in its ack file, crash-proof.

    Order: (segment, ordinal, counter, its old value) -> intent -> counter += 1 -> ack byte -> done. If
    the reader dies in between, the supervisor (Ledger.retire -> `unsettled`) finds intent != done with
    the counter moved and sets the ack byte itself, so the frame is neither sent nor counted again.
    """

    __slots__ = ("_i", "_token", "_w")

    def __init__(self, arena: Arena, reader: int) -> None:
        self._w = arena.words
        self._i = arena.reader_word(reader, 0)
        self._token = self._w[self._i + ACK_DONE]

    def count(self, seg_id: int, ordinal: int, counter: int, settle: Any) -> None:
        w, i = self._w, self._i
        self._token += 1
        w[i + ACK_SEG] = seg_id
        w[i + ACK_ORD] = ordinal
        w[i + ACK_SLOT] = counter
        w[i + ACK_OLD] = w[counter]
        w[i + ACK_INTENT] = self._token
        w[counter] += 1
        settle(ordinal)
        w[i + ACK_DONE] = self._token


def unsettled(arena: Arena, reader: int) -> tuple[int, int] | None:
    """(segment id, ordinal) of a frame a dead reader counted but may not have marked settled."""
    w, i = arena.words, arena.reader_word(reader, 0)
    if w[i + ACK_INTENT] != w[i + ACK_DONE] and w[w[i + ACK_SLOT]] == w[i + ACK_OLD] + 1:
        return w[i + ACK_SEG], w[i + ACK_ORD]
    return None
