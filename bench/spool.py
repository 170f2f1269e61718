"""The spool's cost and speed: `python -m bench.spool [--records N] [--dir DIR] [--bootstrap HOST:PORT]`.

Two numbers, on the real filesystem and (for the second) the real broker:

- **CPU per spooled event**: a reader's spill path during an outage (reader/spooling.py `ring` ->
  Spool.append: one checksummed frame written with pwritev into a segment, segments rolled and
  fsync'd, plus the fsync every spool.fsync_interval_ms), in CPU µs per record (process time: user +
  system), over real process_exec records encoded by the reader's own encoder.
- **Replay rate**: those records replayed by SpoolOutlet through a real librdkafka producer to the
  broker, until every frame is acknowledged and every segment deleted; events/s (wall) and CPU µs
  per replayed event (this process: our replay loop and librdkafka's threads).

Uses a topic of its own (`bench-spool-<random>.process_exec`). The broker must be up
(scripts/kafka.sh up; run it under the shared test lock on a shared machine).
"""

from __future__ import annotations

import argparse
import ctypes as ct
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from producer import config
from producer.kafka.sink import Sink
from producer.kernel.perfbuf import PerfBuffers, Ring
from producer.ledger.arena import REPLAY_DELIVERED, Arena
from producer.reader.process import Reader
from producer.reader.spooling import SpoolOutlet
from producer.records import catalog
from producer.spool.frame import Envelope, SegmentHeader, crc32c
from producer.spool.scan import segment_bytes
from producer.spool.store import Spool

from .encode import _NoKafka, _Rings, records

EVENT = "process_exec"


def encoded(n: int) -> list[bytes]:
    """`n` Kafka message values as a reader frames them (distinct synthetic process_exec records)."""
    values: list[bytes] = []

    class _Keep(_NoKafka):
        def ring(self, *_args: Any, **_kw: Any) -> Callable[[bytes, int], int]:
            def produce(value: bytes, _seq: int) -> int:
                values.append(value)
                return 0

            return produce

    ring = Ring(0, 0, EVENT, 0, -1)
    perf: PerfBuffers = _Rings([ring])  # type: ignore[assignment]
    reader = Reader(0, [0], config.validate({}), perf, Arena(1, 1, 1), "node-1", "0f0e0d0c-boot")
    reader.outlet = _Keep()  # type: ignore[assignment]
    handler = reader.sample_handler(ring)
    raws = records(EVENT, 1000)
    bufs = [ct.create_string_buffer(r, len(r)) for r in raws]
    while len(values) < n:
        for b, r in zip(bufs, raws, strict=True):
            handler(None, ct.addressof(b), len(r))
    return values[:n]


def spill_cost(directory: Path, values: list[bytes], topic: str, fsync_s: float) -> tuple[Spool, float]:
    """Append every value as the outlet's spill does; returns the spool and CPU µs per record."""
    identity = SegmentHeader("bench", "node-1", "boot", 0, 0)
    spool = Spool(directory, identity, max_bytes=1 << 40, segment_bytes=segment_bytes(1 << 30))
    env = Envelope(topic, b"node-1", [("event_type", EVENT), ("reader", "0")]).encode()
    env_crc, type_id = crc32c(env), catalog.BY_NAME[EVENT].id
    append = spool.append
    c0, next_sync = time.process_time(), time.monotonic() + fsync_s
    for seq, value in enumerate(values):
        if not append(type_id, 0, seq, env, env_crc, value):
            raise SystemExit(f"the spool refused record {seq}: is {directory} full?")
        if seq & 1023 == 0 and time.monotonic() >= next_sync:
            spool.sync()
            next_sync = time.monotonic() + fsync_s
    spool.seal()
    return spool, (time.process_time() - c0) / len(values) * 1e6


def replay(spool: Spool, n: int, cfg: config.Config) -> tuple[float, float]:
    """Replay the spool to the broker; (events/s, CPU µs per event)."""
    sink = Sink(cfg.kafka, "bench-spool", lambda: False, spool=True)
    type_id = catalog.BY_NAME[EVENT].id
    arena = Arena(1, 1, 1)
    outlet = SpoolOutlet(
        sink,
        spool,
        arena,
        reader=0,
        run_id="bench",
        blocks=[(0, 0)],
        type_index={type_id: 0},
        runs=(),
        after_s=30.0,
        fsync_s=1.0,
    )
    delivered = arena.base(0, 0, 0) + REPLAY_DELIVERED
    w0, c0 = time.monotonic(), time.process_time()
    while arena.words[delivered] < n:
        sink.poll(0 if outlet.tick(time.monotonic()) else 0.01)
        if time.monotonic() - w0 > 600:
            raise SystemExit(f"replay stalled: {arena.words[delivered]} of {n} delivered")
    wall, cpu = time.monotonic() - w0, time.process_time() - c0
    outlet.close(time.monotonic() + 5)
    assert not list(spool), "every segment is deleted once all of its frames are acknowledged"
    return n / wall, cpu / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.spool", description=__doc__.split("\n")[0])
    p.add_argument("--records", type=int, default=300_000)
    p.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="where the spool goes (a real disk)")
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--fsync-interval-ms", type=int, default=1000)
    args = p.parse_args()
    values = encoded(args.records)
    size = sum(len(v) for v in values) / len(values)
    prefix = f"bench-spool-{uuid.uuid4().hex[:8]}"
    cfg = config.validate({"kafka": {"bootstrap_servers": args.bootstrap, "topic_prefix": prefix}})
    d = Path(tempfile.mkdtemp(prefix="bench-spool-", dir=args.dir))
    try:
        spool, spill_us = spill_cost(d, values, cfg.kafka.topic(EVENT), args.fsync_interval_ms / 1000.0)
        per_frame = spool.bytes / len(values)
        print(f"records  {args.records} process_exec, {size:.0f} B encoded, {per_frame:.0f} B per frame")
        print(f"spill    {spill_us:.2f} CPU µs per spooled event")
        rate, replay_us = replay(spool, args.records, cfg)
        print(f"replay   {rate:,.0f} events/s, {replay_us:.2f} CPU µs per replayed event")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
