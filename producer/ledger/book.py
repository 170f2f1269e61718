"""The drop ledger: where every event the kernel saw ended up, by reason.

Two halves meet here. The kernel counts, per event type and CPU, `seen`
(stamped and about to be submitted), `submit_failed` and `filtered`
(bpf/ledger.bpf.h). Readers count, per event type and CPU, what became of
each record they took, into the shared-memory arena (ledger/arena.py)::

    seen == delivered + dropped + in_flight          (per event type)
    dropped = submit_failed + decode_error + encode_error + queue_full
              + delivery_failed + shutdown + reader_crash + spool_full + spool_corrupt

`lost` (perf lost-sample records) reports the same ring-full events the
kernel already counted as submit_failed, so it is shown but not added twice.
`untracked` (processes the full process table could not hold: their records
have no identity) is information too, counted in the kernel.
`in_flight` is what sits in perf buffers, inside a reader, in a producer
queue or in the spool; `spooled` is the part in the spool. After a clean
stop in_flight == spooled (0 once the spool was replayed).

Records an earlier run left in the spool are not this run's: they were seen
(and counted in_flight, spooled) by that run. What this run does with them is
the replay table, one row per earlier run and event type (`replayed` in the
drop report): found == delivered + delivery_failed + spool_corrupt + in_flight.
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
    N_REPLAY,
    PRODUCED,
    QUEUE_FULL,
    R_CORRUPT,
    R_DELIVERED,
    R_FAILED,
    R_FOUND,
    R_TORN,
    READER_REASONS,
    REPLAY_DELIVERED,
    REPLAY_FAILED,
    RESPOOLED,
    SHUTDOWN,
    SPOOL_CORRUPT,
    SPOOL_FULL,
    SPOOL_LOST,
    SPOOLED,
    Arena,
    held,
    pending,
    unsettled,
)

ReadKernel = Callable[[], Mapping[tuple[int, int], "KernelCounts"]]
# (reader, segment id, ordinal) -> mark that spool frame settled (a dead reader counted it)
SettleFrame = Callable[[int, int, int], None]
# Reasons shown as their own rows; the rest of the words are bookkeeping folded into these.
_HIDDEN = {PRODUCED, RESPOOLED, REPLAY_DELIVERED, DELIVERED, SPOOLED}


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
    spooled: int = 0  # part of in_flight: this run's records in the spool

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
            "spooled": self.spooled,
        }


@dataclass
class Replayed:
    """What this run did with one earlier run's spooled records of one event type."""

    run_id: str
    event_type: str
    found: int = 0
    delivered: int = 0
    delivery_failed: int = 0
    spool_corrupt: int = 0
    spool_torn: int = 0  # informational: cut short by a crash, never counted by that run

    @property
    def in_flight(self) -> int:
        return self.found - self.delivered - self.delivery_failed - self.spool_corrupt

    def as_record(self) -> dict[str, Any]:
        return {**self.__dict__, "in_flight": self.in_flight}


@dataclass
class Snapshot:
    """One consistent reading of the ledger: rows (type, cpu, reason, code) -> count, and balances."""

    counts: dict[tuple[str, int, str, str | None], int] = field(default_factory=dict)
    balances: dict[str, Balance] = field(default_factory=dict)
    replayed: list[Replayed] = field(default_factory=list)

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
    """The supervisor's view of the arena: the readers' slots, plus what it folded in from readers
    that died (the arena's retired slot and reader_crash words, so a file arena has them too)."""

    def __init__(
        self,
        arena: Arena,
        event_types: Sequence[str],
        groups: Sequence[Sequence[int]],
        shared: Sequence[int] = (),
        *,
        settle_frame: SettleFrame | None = None,
        replay_types: Sequence[str] = (),
    ) -> None:
        """`shared`: the type indexes read from one ring for all CPUs, by reader 0 (kernel/ringbuf.py):
        reader 0 owns their rows of every CPU."""
        self.arena = arena
        self.event_types = tuple(event_types)
        self.groups = [tuple(g) for g in groups]
        self.owner = {cpu: r for r, g in enumerate(self.groups) for cpu in g}
        self.shared = frozenset(shared)
        self.settle_frame = settle_frame
        self.replay_types = tuple(replay_types)  # by catalog id, the last one "unknown"
        self.runs: tuple[str, ...] = tuple(arena.meta.get("runs", ()))

    def retire(self, reader: int) -> int:
        """Fold a dead reader's counters into the ledger before its slot is reused.

        What it had handed to Kafka but not heard back about is counted as
        reader_crash (some of it may have reached the broker: the ledger
        errs towards reporting a loss). What it had in its spool stays there:
        its successor replays it. The last record it finished on each
        CPU is marked, so the next reader skips it if the ring gives it
        again (the reader died after counting it but before advancing the
        ring's tail); a replayed frame it counted but had not marked settled
        is marked now. Returns the number counted as reader_crash.
        """
        a = self.arena
        w = a.words
        frame = unsettled(a, reader)
        if frame is not None and self.settle_frame is not None:
            self.settle_frame(reader, *frame)
        lost_total = 0
        for t, cpu in self.owned(reader):
            block = a.block(reader, t, cpu)
            crash = pending(block)
            if crash:
                w[a.crash_index(t, cpu)] += crash
                lost_total += crash
            into = a.base(a.retired_slot, t, cpu)
            for reason, v in enumerate(block):
                if v:
                    w[into + reason] += v
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

    def snapshot(self, read_kernel: ReadKernel) -> Snapshot:
        """Read the reader counters, then the kernel's through `read_kernel`.

        The order matters: every record a reader counted was seen by the
        kernel before, so reading the kernel last keeps in_flight >= 0.
        `read_kernel` returns (type index, cpu) -> that CPU's kernel counters;
        they are kept in the arena too (the last reading a recovery can use).
        """
        reader_counts = self.reader_counts()
        kernel = read_kernel()
        for (t, cpu), k in kernel.items():
            if t < self.arena.types and cpu < self.arena.cpus:
                self.arena.store_kernel(t, cpu, (k.seen, k.submit_failed, k.filtered, k.untracked))
        return self.build(reader_counts, kernel)

    def reader_counts(self) -> dict[tuple[int, int], list[int]]:
        """(type index, cpu) -> its block, summed over every reader slot and the retired one."""
        a = self.arena
        out: dict[tuple[int, int], list[int]] = {}
        for t in range(len(self.event_types)):
            for cpu in self.owner:
                blk = [0] * N_REASONS
                for r in range(a.readers + 1):
                    for reason, v in enumerate(a.block(r, t, cpu)):
                        blk[reason] += v
                out[(t, cpu)] = blk
        return out

    def build(
        self,
        reader_counts: Mapping[tuple[int, int], list[int]],
        kernel: Mapping[tuple[int, int], KernelCounts],
        extra_crash: Mapping[tuple[int, int], int] | None = None,
    ) -> Snapshot:
        """A snapshot from given counts (recovery passes what a dead run's last moments cost)."""
        a = self.arena
        snap = Snapshot()
        for t, name in enumerate(self.event_types):
            bal = Balance(name)
            for cpu in sorted(self.owner):
                k = kernel.get((t, cpu), KernelCounts(0, 0, 0))
                blk = reader_counts[(t, cpu)]
                crash = a.words[a.crash_index(t, cpu)] + (extra_crash or {}).get((t, cpu), 0)
                delivered = blk[DELIVERED] + blk[REPLAY_DELIVERED]
                failed = [
                    blk[DELIVERY_FAILED + i] + blk[REPLAY_FAILED + i] for i in range(len(DELIVERY_CODES))
                ]
                rows: list[tuple[str, str | None, int]] = [
                    ("seen", None, k.seen),
                    ("submit_failed", None, k.submit_failed),
                    ("filtered", None, k.filtered),
                    ("untracked", None, k.untracked),
                    ("reader_crash", None, crash),
                    ("delivered", None, delivered),
                    ("spooled", None, blk[SPOOLED] + blk[RESPOOLED]),
                ]
                rows += [
                    (READER_REASONS[i], None, blk[i]) for i in range(DELIVERY_FAILED) if i not in _HIDDEN
                ]
                rows += [("delivery_failed", code, failed[i]) for i, code in enumerate(DELIVERY_CODES)]
                for label, code, v in rows:
                    if v:
                        snap.counts[(name, cpu, label, code)] = v
                bal.seen += k.seen
                bal.filtered += k.filtered
                bal.delivered += delivered
                bal.spooled += held(blk)
                bal.dropped += dropped(blk, k, crash)
            snap.balances[name] = bal
        lost = sum(a.words[a.reader_word(r, SPOOL_LOST)] for r in range(a.readers))
        if lost:
            snap.counts[("unknown", -1, "spool_corrupt", None)] = lost
        snap.replayed = self.replayed()
        return snap

    def replayed(self) -> list[Replayed]:
        """The replay table: per earlier run and event type, summed over readers and the scan's slot."""
        a = self.arena
        out = []
        for run_slot, run_id in enumerate(self.runs):
            for rt, name in enumerate(self.replay_types):
                v = [0] * N_REPLAY
                for r in range(a.readers + 1):
                    b = a.replay_base(r, run_slot, rt)
                    for i in range(N_REPLAY):
                        v[i] += a.words[b + i]
                if any(v):
                    out.append(
                        Replayed(
                            run_id,
                            name,
                            found=v[R_FOUND],
                            delivered=v[R_DELIVERED],
                            delivery_failed=sum(v[R_FAILED:]),
                            spool_corrupt=v[R_CORRUPT],
                            spool_torn=v[R_TORN],
                        )
                    )
        return out

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


def dropped(blk: Sequence[int], k: KernelCounts, crash: int) -> int:
    """Every drop of one (type, cpu): the kernel's, the reader's block (direct and replayed), crashes."""
    return (
        k.submit_failed
        + blk[DECODE_ERROR]
        + blk[ENCODE_ERROR]
        + blk[QUEUE_FULL]
        + blk[SHUTDOWN]
        + sum(blk[DELIVERY_FAILED:N_REASONS])
        + crash
        + blk[SPOOL_FULL]
        + blk[SPOOL_CORRUPT]
    )


def unexplained(blk: Sequence[int], k: KernelCounts, crash: int) -> int:
    """seen - delivered - dropped - spooled: what only a live collector can still hold (rings, queues)."""
    return k.seen - blk[DELIVERED] - blk[REPLAY_DELIVERED] - dropped(blk, k, crash) - held(blk)


def _row_key(item: tuple[tuple[str, int, str, str | None], int]) -> tuple[str, int, str, str]:
    (t, cpu, reason, code), _ = item
    return (t, cpu, reason, code or "")


def sum_rows(rows: Iterable[dict[str, Any]], **match: Any) -> int:
    """Sum `count` over drop-report counter records matching every given field (for consumers and tests)."""
    return sum(r["count"] for r in rows if all(r.get(k) == v for k, v in match.items()))
