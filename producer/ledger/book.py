"""The drop ledger: where every event the kernel saw ended up, by reason.

Two halves meet here. The kernel counts, per event type and CPU, `seen`
(stamped and about to be submitted), `submit_failed` and `filtered`
(bpf/ledger.bpf.h). Readers count, per event type and CPU, what became of
each record they took, into the shared-memory arena (ledger/arena.py)::

    seen == delivered + dropped + in_flight          (per event type)
    dropped = submit_failed + decode_error + encode_error + queue_full
              + delivery_failed + shutdown + reader_crash

`lost` (perf lost-sample records) reports the same ring-full events the
kernel already counted as submit_failed, so it is shown but not added twice.
`untracked` (processes the full process table could not hold: their records
have no identity) is information too, counted in the kernel.
`in_flight` is what sits in perf buffers, inside a reader or in a producer
queue; after a clean stop it is 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .arena import (
    DECODE_ERROR,
    DELIVERED,
    DELIVERY_CODES,
    DELIVERY_FAILED,
    ENCODE_ERROR,
    N_REASONS,
    PRODUCED,
    QUEUE_FULL,
    READER_REASONS,
    SHUTDOWN,
    Arena,
    pending,
)


@dataclass(frozen=True)
class KernelCounts:
    seen: int
    submit_failed: int
    filtered: int
    untracked: int = 0


@dataclass
class Balance:
    event_type: str
    seen: int = 0
    delivered: int = 0
    dropped: int = 0
    filtered: int = 0

    @property
    def in_flight(self) -> int:
        return self.seen - self.delivered - self.dropped

    def as_record(self) -> dict[str, Any]:
        return {
            "event_type": self.event_type,
            "seen": self.seen,
            "delivered": self.delivered,
            "dropped": self.dropped,
            "in_flight": self.in_flight,
            "filtered": self.filtered,
        }


@dataclass
class Snapshot:
    """One consistent reading of the ledger: rows (type, cpu, reason, code) -> count, and balances."""

    counts: dict[tuple[str, int, str, str | None], int] = field(default_factory=dict)
    balances: dict[str, Balance] = field(default_factory=dict)

    def add_aggregate(
        self,
        event_type: str,
        kernel: KernelCounts,
        counted: int,
        delivered: int,
        failed: Mapping[str, int],
        shutdown: int,
        drops: Mapping[str, int] | None = None,
        info: Mapping[str, int] | None = None,
    ) -> None:
        """Rows and balance of a type the supervisor publishes (an aggregate, counted in its own unit;
        <prefix>.containers, in records), all CPUs as cpu -1. `drops`: more drop reasons by name
        (encode_error, queue_full); `info`: rows that are no drop.

        Added to the event type's balance when it has one already (a stream with entries of the
        supervisor's: the processes seeded at start)."""
        seen = counted + kernel.submit_failed
        more = {k: v for k, v in (drops or {}).items() if v}
        rows: list[tuple[str, str | None, int]] = [
            ("seen", None, seen),
            ("submit_failed", None, kernel.submit_failed),
            ("filtered", None, kernel.filtered),
            ("delivered", None, delivered),
            ("shutdown", None, shutdown),
        ]
        rows += [("delivery_failed", code, n) for code, n in failed.items()]
        rows += [(reason, None, n) for reason, n in (*more.items(), *(info or {}).items())]
        for reason, code, v in rows:
            if v:
                self.counts[(event_type, -1, reason, code)] = v
        dropped = kernel.submit_failed + sum(failed.values()) + shutdown + sum(more.values())
        bal = self.balances.setdefault(event_type, Balance(event_type))
        bal.seen += seen
        bal.delivered += delivered
        bal.dropped += dropped
        bal.filtered += kernel.filtered

    def get(self, event_type: str, reason: str, cpu: int | None = None) -> int:
        return sum(
            v
            for (t, c, r, _), v in self.counts.items()
            if t == event_type and r == reason and (cpu is None or c == cpu)
        )


class Ledger:
    """The supervisor's view: the arena, plus what it folded in from readers that died."""

    def __init__(
        self,
        arena: Arena,
        event_types: Sequence[str],
        groups: Sequence[Sequence[int]],
        shared: Sequence[int] = (),
    ) -> None:
        """`shared`: the type indexes read from one ring for all CPUs, by reader 0 (kernel/ringbuf.py):
        reader 0 owns their rows of every CPU."""
        self.arena = arena
        self.event_types = tuple(event_types)
        self.groups = [tuple(g) for g in groups]
        self.owner = {cpu: r for r, g in enumerate(self.groups) for cpu in g}
        self.shared = frozenset(shared)
        # (type_idx, cpu, reason index) -> count carried over from dead readers
        self._retired: dict[tuple[int, int, int], int] = {}
        self._crash: dict[tuple[int, int], int] = {}

    def retire(self, reader: int) -> int:
        """Fold a dead reader's counters into the ledger before its slot is reused.

        What it had handed to Kafka but not heard back about is counted as
        reader_crash (some of it may have reached the broker: the ledger
        errs towards reporting a loss). The last record it finished on each
        CPU is marked, so the next reader skips it if the ring gives it
        again (the reader died after counting it but before advancing the
        ring's tail). Returns the number counted as reader_crash.
        """
        a = self.arena
        lost_total = 0
        for t, cpu in self.owned(reader):
            block = a.block(reader, t, cpu)
            crash = pending(block)
            if crash:
                self._crash[(t, cpu)] = self._crash.get((t, cpu), 0) + crash
                lost_total += crash
            for reason, v in enumerate(block):
                if v:
                    self._retired[(t, cpu, reason)] = self._retired.get((t, cpu, reason), 0) + v
            a.settle_journal(t, cpu)
        a.zero_reader(reader)
        return lost_total

    def owner_of(self, type_idx: int, cpu: int) -> int:
        """The reader that reads (and counts) this event type's records of this CPU."""
        return 0 if type_idx in self.shared else self.owner.get(cpu, -1)

    def owned(self, reader: int) -> list[tuple[int, int]]:
        """(type index, cpu) of every row `reader` counts."""
        return [
            (t, cpu)
            for t in range(len(self.event_types))
            for cpu in sorted(self.owner)
            if self.owner_of(t, cpu) == reader
        ]

    def snapshot(self, read_kernel: Callable[[], Mapping[tuple[int, int], KernelCounts]]) -> Snapshot:
        """Read the reader counters, then the kernel's through `read_kernel`.

        The order matters: every record a reader counted was seen by the
        kernel before, so reading the kernel last keeps in_flight >= 0.
        `read_kernel` returns (type index, cpu) -> that CPU's kernel counters.
        """
        a = self.arena
        reader_counts: dict[tuple[int, int], list[int]] = {}
        for t in range(len(self.event_types)):
            for cpu in self.owner:
                blk = a.block(self.owner_of(t, cpu), t, cpu)
                for reason in range(N_REASONS):
                    blk[reason] += self._retired.get((t, cpu, reason), 0)
                reader_counts[(t, cpu)] = blk
        kernel = read_kernel()
        snap = Snapshot()
        for t, name in enumerate(self.event_types):
            bal = Balance(name)
            for cpu in sorted(self.owner):
                k = kernel.get((t, cpu), KernelCounts(0, 0, 0))
                blk = reader_counts[(t, cpu)]
                crash = self._crash.get((t, cpu), 0)
                rows: list[tuple[str, str | None, int]] = [
                    ("seen", None, k.seen),
                    ("submit_failed", None, k.submit_failed),
                    ("filtered", None, k.filtered),
                    ("untracked", None, k.untracked),
                    ("reader_crash", None, crash),
                ]
                rows += [(READER_REASONS[i], None, blk[i]) for i in range(DELIVERY_FAILED) if i != PRODUCED]
                rows += [
                    ("delivery_failed", code, blk[DELIVERY_FAILED + i])
                    for i, code in enumerate(DELIVERY_CODES)
                ]
                for label, code, v in rows:
                    if v:
                        snap.counts[(name, cpu, label, code)] = v
                bal.seen += k.seen
                bal.filtered += k.filtered
                bal.delivered += blk[DELIVERED]
                bal.dropped += (
                    k.submit_failed
                    + blk[DECODE_ERROR]
                    + blk[ENCODE_ERROR]
                    + blk[QUEUE_FULL]
                    + blk[SHUTDOWN]
                    + sum(blk[DELIVERY_FAILED:N_REASONS])
                    + crash
                )
            snap.balances[name] = bal
        return snap

    def counter_records(self, snap: Snapshot) -> list[dict[str, Any]]:
        return [
            {
                "event_type": t,
                "cpu": cpu,
                "reader": self.owner_of(self.event_types.index(t), cpu) if t in self.event_types else -1,
                "reason": reason,
                "error_code": code,
                "count": v,
            }
            for (t, cpu, reason, code), v in sorted(snap.counts.items(), key=_row_key)
        ]


def _row_key(item: tuple[tuple[str, int, str, str | None], int]) -> tuple[str, int, str, str]:
    (t, cpu, reason, code), _ = item
    return (t, cpu, reason, code or "")


def sum_rows(rows: Iterable[dict[str, Any]], **match: Any) -> int:
    """Sum `count` over drop-report counter records matching every given field (for consumers and tests)."""
    return sum(r["count"] for r in rows if all(r.get(k) == v for k, v in match.items()))
