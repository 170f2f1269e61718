"""syscall_counts: the counter-map pattern beside the perf stream, published by the supervisor.

The kernel keeps cumulative per-CPU counts per (cgroup, syscall) in a BPF
hash map (bpf/collector.bpf.c). Every interval the supervisor reads the map
(records/syscall_counts.py), publishes one SyscallCounts record per cgroup
with the deltas since the last published reading, and accounts for them in
the ledger — in syscalls, not records:

    seen      = every syscall counted in the map, plus those the full map refused
    delivered = syscalls in records the broker acknowledged
    dropped   = submit_failed (map full) + delivery_failed + shutdown
    in_flight = counted but not yet published, or published and not yet acknowledged

A record the producer queue refuses does not advance the published reading,
so its counts are simply published with the next interval: nothing is lost.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from ..config import Config
from ..kafka.client import PURGE_ERRORS
from ..kafka.framing import framing
from ..kafka.publisher import QUEUE_FULL, OnResult, Publisher
from ..records import syscall_counts
from ..records.containers import ContainerResolver

log = structlog.get_logger("aggregate")
EVENT_TYPE = "syscall_counts"


@dataclass
class AggregateCounts:
    """This aggregate's ledger, in syscalls."""

    delivered: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    shutdown: int = 0
    pending: int = 0  # published, not yet acknowledged


class SyscallCounts:
    def __init__(
        self,
        cfg: Config,
        table: Any,
        publisher: Publisher,
        host: str,
        boot_id: str,
        resolver: ContainerResolver,
        interval_s: float,
        schema_ids: Mapping[str, int],
        k8s_of: Callable[[str | None], dict[str, Any] | None] = lambda _cid: None,
    ) -> None:
        """`k8s_of`: a container id's `k8s` value (ledger/containers.py: what the watcher reported)."""
        self.table = table
        self.k8s_of = k8s_of
        self.publisher = publisher
        self.host = host
        self.boot_id = boot_id
        self.resolver = resolver
        self.interval_s = interval_s
        self.topic = cfg.kafka.topic(EVENT_TYPE)
        self.framing = framing(EVENT_TYPE, schema_ids)
        self.names = syscall_counts.syscall_names()
        self.counts = AggregateCounts()
        self._published: dict[tuple[int, int], int] = defaultdict(int)  # (cgroup, nr) -> cumulative published
        self._current: syscall_counts.Reading = {}
        self._last_us = time.time_ns() // 1000
        self.next_due = time.monotonic() + interval_s

    def read(self) -> int:
        """Read the map; returns the total counted so far (all CPUs, all keys)."""
        self._current = syscall_counts.read(self.table)
        return sum(self._current.values())

    def publish(self) -> int:
        """Publish the deltas since the last published reading; returns the records queued."""
        self.read()
        now_us = time.time_ns() // 1000
        by_cgroup: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for (cg, nr), total in self._current.items():
            delta = total - self._published[(cg, nr)]
            if delta > 0:
                by_cgroup[cg].append((nr, delta))
        queued = 0
        for cg, items in by_cgroup.items():
            cid = self.resolver.container_id(cg)
            rec = syscall_counts.record(
                host=self.host,
                boot_id=self.boot_id,
                cgroup_id=cg,
                container_id=cid,
                interval=(self._last_us, now_us),
                counts=items,
                names=self.names,
                k8s=self.k8s_of(cid),
            )
            total = rec["total"]
            try:
                value = self.framing.encoder.encode(rec)
                why = self.publisher.send(
                    self.topic, value, self.host.encode(), self.framing.headers, self._on_result(total)
                )
            except Exception as e:  # an encode error: these counts are lost, and counted
                why = type(e).__name__
            if why == QUEUE_FULL:
                continue  # not published: the same counts go out with the next interval
            if why is None:
                self.counts.pending += total
                queued += 1
            else:
                self._failed(why, total)
            for nr, c in items:
                self._published[(cg, nr)] += c
        self._last_us = now_us
        self.next_due = time.monotonic() + self.interval_s
        return queued

    def _on_result(self, total: int) -> OnResult:
        def cb(error: str | None) -> None:
            self.counts.pending -= total
            if error is None:
                self.counts.delivered += total
            elif error in PURGE_ERRORS:
                self.counts.shutdown += total
            else:
                self._failed(error, total)

        return cb

    def _failed(self, code: str, total: int) -> None:
        self.counts.failed[code] = self.counts.failed.get(code, 0) + total
        log.warning("syscall_counts_not_delivered", error=code, syscalls=total)

    def close_books(self) -> None:
        """At shutdown, after the last flush: what never got an answer is counted as shutdown."""
        if self.counts.pending > 0:
            self.counts.shutdown += self.counts.pending
            self.counts.pending = 0
