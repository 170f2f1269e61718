"""The processes alive at start, published to <prefix>.processes before any entry of the kernel's.

The process table is seeded from /proc before the programs attach (kernel/seed.py); these are the
same processes as entries of the processes topic (kind `seeded`). They are published, and flushed,
before the programs attach and the readers fork, with a producer of their own that is gone before
the fork (librdkafka must not be forked): so the exit of a seeded process, which reader 0 publishes
later, lands after its seeded entry on the compacted topic.

Their ledger: rows of event type `processes` at cpu -1, like an aggregate's: seen (entries made),
delivered, delivery_failed (by error name, a purge's included).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from ..config import Config
from ..kafka.framing import framing
from ..kafka.publisher import QUEUE_FULL, Publisher
from ..kernel.procfs import Process
from ..kernel.seed import cgroup_id_of
from ..records import catalog
from ..records.containers import ContainerResolver
from ..records.process_exec import ExecOptions
from ..records.processes import seeded_record

log = structlog.get_logger("supervisor")
EVENT_TYPE = "processes"


@dataclass
class SeededCounts:
    seen: int = 0
    delivered: int = 0
    failed: dict[str, int] = field(default_factory=dict)


def publish_seeded(
    cfg: Config,
    procs: Sequence[Process],
    *,
    host: str,
    boot_id: str,
    boot_to_wall_ns: int,
    resolver: ContainerResolver,
    schema_ids: Mapping[str, int],
    timeout_s: float = 15.0,
) -> SeededCounts:
    """Publish one entry per seeded process and wait (bounded) for every answer; returns the books."""
    counts = SeededCounts()
    entry = catalog.BY_NAME[EVENT_TYPE]
    if not entry.enabled(cfg):
        return counts
    frame = framing(EVENT_TYPE, schema_ids)
    topic = cfg.kafka.topic(EVENT_TYPE)
    exec_type = catalog.BY_NAME["process_exec"]
    assert exec_type.options is not None
    opts = exec_type.options(exec_type.section(cfg))
    assert isinstance(opts, ExecOptions)
    starts = {p.pid: p.starttime for p in procs}
    now_us = time.time_ns() // 1000
    publisher = Publisher(cfg.kafka, f"ebpf-producer-{host}-seed")

    def on_result(error: str | None) -> None:
        if error is None:
            counts.delivered += 1
        else:
            counts.failed[error] = counts.failed.get(error, 0) + 1

    for i, p in enumerate(procs):
        cg = cgroup_id_of(p.pid)
        rec = seeded_record(
            index=i,
            host=host,
            boot_id=boot_id,
            now_us=now_us,
            boot_to_wall_ns=boot_to_wall_ns,
            pid=p.pid,
            ppid=p.ppid,
            starttime_ticks=p.starttime,
            parent_starttime_ticks=starts.get(p.ppid),
            uid=p.uid,
            gid=p.gid,
            comm=p.comm,
            exe=p.exe,
            argv=p.argv,
            cgroup_id=cg,
            container_id=resolver.container_id(cg),
            opts=opts,
        )
        counts.seen += 1
        value = frame.encoder.encode(rec)
        key = rec["process_id"].encode()
        while (why := publisher.send(topic, value, key, frame.headers, on_result)) == QUEUE_FULL:
            publisher.flush(0.1)  # a start-up burst: wait for room, it is bounded by the flush below
        if why is not None:
            on_result(why)
    left = publisher.flush(timeout_s)
    if left:
        publisher.purge()  # their callbacks count them (a purge's error name)
    publisher.close()
    log.info("processes_seeded", published=counts.seen, delivered=counts.delivered, failed=counts.failed)
    return counts
