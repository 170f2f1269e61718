"""The kernel's half of the ledger: the per-CPU counters of each event type (bpf/ledger.bpf.h)."""

from __future__ import annotations

from collections.abc import Sequence

from ..ledger.book import KernelCounts
from ..records.catalog import EventType
from .build import BpfModule


class KernelCounters:
    def __init__(self, module: BpfModule, streams: Sequence[EventType]) -> None:
        """`streams`: the enabled stream types in ledger order (their index is the ledger's type index)."""
        self._table = module.table("ekp_counters")
        self._streams = tuple(streams)

    def read(self) -> dict[tuple[int, int], KernelCounts]:
        """(type index, cpu) -> that CPU's counters, for every stream type."""
        out: dict[tuple[int, int], KernelCounts] = {}
        for type_idx, e in enumerate(self._streams):
            for cpu, v in enumerate(self._table[self._table.Key(e.id)]):
                out[(type_idx, cpu)] = KernelCounts(
                    int(v.seen), int(v.submit_failed), int(v.filtered), int(v.untracked)
                )
        return out

    def total(self, event: EventType) -> KernelCounts:
        """All CPUs' counters of one event type, summed."""
        per_cpu = self._table[self._table.Key(event.id)]
        return KernelCounts(
            sum(int(v.seen) for v in per_cpu),
            sum(int(v.submit_failed) for v in per_cpu),
            sum(int(v.filtered) for v in per_cpu),
            sum(int(v.untracked) for v in per_cpu),
        )
