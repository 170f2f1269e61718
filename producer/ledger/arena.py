"""The readers' half of the drop ledger: counters in shared memory that outlive the readers.

The arena is a MAP_SHARED anonymous mapping made before the readers fork: per reader slot, event
type and CPU, one 64-bit word per reason below. Each word has one writer (a reader, or the
supervisor while that reader is dead), so no locks are needed; aligned 8-byte stores are atomic.
The supervisor therefore still knows a reader's exact counts after it was killed.

Beside the counters, a journal per (event type, CPU) makes the counting crash-proof: the reader
journals each count before making it (Journal, the write side) and the supervisor reads the journal
of a dead reader (Arena.settle_journal) to tell its successor which one record it must skip.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence

# Reader-side reasons, in arena order. `produced` (accepted into the producer
# queue) is bookkeeping: produced - delivered - delivery_failed - shutdown is
# what a reader holds unresolved, which becomes reader_crash if it dies.
LOST = 0
DECODE_ERROR = 1
ENCODE_ERROR = 2
QUEUE_FULL = 3
SHUTDOWN = 4
DELIVERED = 5
PRODUCED = 6
ESCAPED = 7
K8S_UNRESOLVED = 8  # info: a pod container's record built before its pod was known (k8s null)
DELIVERY_FAILED = 9  # first of len(DELIVERY_CODES) slots
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
N_REASONS = DELIVERY_FAILED + len(DELIVERY_CODES)

DROP_REASONS = (
    "submit_failed",
    "decode_error",
    "encode_error",
    "queue_full",
    "delivery_failed",
    "shutdown",
    "reader_crash",
)


def delivery_slot(error_name: str) -> int:
    return DELIVERY_FAILED + CODE_INDEX.get(error_name, CODE_INDEX["other"])


def pending(block: Sequence[int]) -> int:
    """Records a reader handed to Kafka whose fate it has not learned yet."""
    failed = sum(block[DELIVERY_FAILED:N_REASONS])
    return block[PRODUCED] - block[DELIVERED] - failed - block[SHUTDOWN]


class Arena:
    """Shared counters: per reader slot x event type x CPU x reason, plus a journal per (type, CPU)."""

    # Journal words per (type, CPU); see Journal for the write order.
    _DONE, _INTENT, _SLOT, _OLD, _SUSPECT = range(5)
    _JOURNAL_WORDS = 5

    def __init__(self, readers: int, types: int, cpus: int) -> None:
        self.readers, self.types, self.cpus = readers, types, cpus
        self._counters = readers * types * cpus * N_REASONS
        journal = types * cpus * self._JOURNAL_WORDS
        self._mm = mmap.mmap(-1, 8 * (self._counters + journal))
        self.words = memoryview(self._mm).cast("Q")

    def base(self, reader: int, type_idx: int, cpu: int) -> int:
        """Index of reason 0 of one (reader, type, cpu) block; add a reason constant to it."""
        return ((reader * self.types + type_idx) * self.cpus + cpu) * N_REASONS

    def _journal(self, type_idx: int, cpu: int) -> int:
        return self._counters + (type_idx * self.cpus + cpu) * self._JOURNAL_WORDS

    def journal_indices(self, type_idx: int, cpu: int) -> tuple[int, int, int, int]:
        """(done, intent, slot, old) word indices for a reader's journal."""
        j = self._journal(type_idx, cpu)
        return j + self._DONE, j + self._INTENT, j + self._SLOT, j + self._OLD

    def suspect_index(self, type_idx: int, cpu: int) -> int:
        return self._journal(type_idx, cpu) + self._SUSPECT

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

    def block(self, reader: int, type_idx: int, cpu: int) -> list[int]:
        b = self.base(reader, type_idx, cpu)
        return list(self.words[b : b + N_REASONS])

    def zero_reader(self, reader: int) -> None:
        start = self.base(reader, 0, 0)
        end = start + self.types * self.cpus * N_REASONS
        for i in range(start, end):
            self.words[i] = 0


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
