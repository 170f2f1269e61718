"""syscall_counts: the counter-map pattern beside the perf stream.

The kernel keeps cumulative per-CPU counts per (cgroup, syscall) in a BPF
hash map (bpf/collector.bpf.c). Every interval the supervisor reads the map,
publishes one SyscallCounts record per cgroup with the deltas since the last
published reading, and accounts for them in the ledger — in syscalls, not
records:

    seen      = every syscall counted in the map, plus those the full map refused
    delivered = syscalls in records the broker acknowledged
    dropped   = submit_failed (map full) + delivery_failed + shutdown
    in_flight = counted but not yet published, or published and not yet acknowledged

A record the producer queue refuses does not advance the published reading,
so its counts are simply published with the next interval: nothing is lost.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from . import codec, sink
from .config import Config
from .containers import ContainerResolver
from .ledger import KernelCounts

log = structlog.get_logger("aggregate")
EVENT_TYPE = "syscall_counts"


def syscall_names(header: Path = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")) -> dict[int, str]:
    """Syscall numbers -> names from the C library headers, when they are installed."""
    try:
        text = header.read_text()
    except OSError:
        return {}
    return {int(nr): name for name, nr in re.findall(r"#define __NR_(\w+) (\d+)", text)}


@dataclass
class AggregateCounts:
    """This aggregate's ledger, in syscalls."""

    delivered: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    shutdown: int = 0
    pending: int = 0  # published, not yet acknowledged

    def balance(self, kernel: KernelCounts, counted: int) -> tuple[int, int, int]:
        """(seen, dropped, in_flight) given the kernel counters and the map's current total."""
        seen = counted + kernel.submit_failed
        dropped = kernel.submit_failed + sum(self.failed.values()) + self.shutdown
        return seen, dropped, seen - self.delivered - dropped


class SyscallCounts:
    def __init__(
        self,
        cfg: Config,
        table: Any,
        producer: Any,
        host: str,
        boot_id: str,
        resolver: ContainerResolver,
        interval_s: float,
        *,
        schema_id: int | None = None,
    ) -> None:
        self.table = table
        self.producer = producer
        self.host = host
        self.boot_id = boot_id
        self.resolver = resolver
        self.interval_s = interval_s
        self.topic = cfg.kafka.topic(EVENT_TYPE)
        self.encoder = codec.Encoder(
            codec.load_schema(EVENT_TYPE),
            header=None if schema_id is None else codec.confluent_header(schema_id),
        )
        self.headers = sink.headers_for(EVENT_TYPE, self.encoder.content_type)
        self.names = syscall_names()
        self.counts = AggregateCounts()
        self._published: dict[tuple[int, int], int] = defaultdict(int)  # (cgroup, nr) -> cumulative published
        self._current: dict[tuple[int, int], int] = {}
        self._last_us = time.time_ns() // 1000
        self.next_due = time.monotonic() + interval_s

    def read(self) -> int:
        """Read the map; returns the total counted so far (all CPUs, all keys)."""
        current = {}
        for key, per_cpu in self.table.items():
            current[(int(key.cgroup_id), int(key.nr))] = sum(int(v) for v in per_cpu)
        self._current = current
        return sum(current.values())

    def counted(self) -> int:
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
            items.sort()
            total = sum(c for _, c in items)
            rec = {
                "timestamp": now_us,
                "host": self.host,
                "boot_id": self.boot_id,
                "cgroup_id": cg,
                "container_id": self.resolver.container_id(cg),
                "interval_start": self._last_us,
                "interval_end": now_us,
                "syscalls": [
                    {"nr": nr, "name": self.names.get(nr, f"sys_{nr}"), "count": c} for nr, c in items
                ],
                "total": total,
            }
            try:
                value = self.encoder.encode(rec)
                self.producer.produce(
                    self.topic,
                    value,
                    self.host.encode(),
                    headers=self.headers,
                    on_delivery=self._on_delivery(total),
                )
            except BufferError:
                continue  # not published: the same counts go out with the next interval
            except Exception as e:  # an encode or client error: these counts are lost, and counted
                self._failed(type(e).__name__, total)
            else:
                self.counts.pending += total
                queued += 1
            for nr, c in items:
                self._published[(cg, nr)] += c
        self._last_us = now_us
        self.next_due = time.monotonic() + self.interval_s
        self.producer.poll(0)
        return queued

    def _on_delivery(self, total: int) -> Any:
        def cb(err: Any, _msg: Any) -> None:
            self.counts.pending -= total
            if err is None:
                self.counts.delivered += total
            elif err.code() in sink.PURGED:
                self.counts.shutdown += total
            else:
                self._failed(err.name(), total)

        return cb

    def _failed(self, code: str, total: int) -> None:
        self.counts.failed[code] = self.counts.failed.get(code, 0) + total
        log.warning("syscall_counts_not_delivered", error=code, syscalls=total)

    def close_books(self) -> None:
        """At shutdown, after the last flush: what never got an answer is counted as shutdown."""
        if self.counts.pending > 0:
            self.counts.shutdown += self.counts.pending
            self.counts.pending = 0
