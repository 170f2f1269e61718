"""The readers' encode path per event type: `python -m bench.encode [RECORDS]`.

Times the reader's perf-buffer callback (reader/handler.py: copy, sequence check, parse + Avro encode,
ledger journal) over synthetic records of every stream type, with produce() a no-op: the part of a
record's cost that is ours, without librdkafka and without the kernel. No root, no broker. Prints
µs per record per type (the best of five runs, and their median).

Instructions rather than time (the same on a noisy machine), for one type:
    valgrind --tool=callgrind python -m bench.encode --types file_open 1000    (and 11000)
the difference of the two totals over 5 x 10 000 records.
"""

from __future__ import annotations

import argparse
import ctypes as ct
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from producer import config
from producer.kernel.perfbuf import PerfBuffers, Ring
from producer.ledger.arena import PRODUCED, Arena
from producer.reader.process import Reader
from tests.support.records import BUILDERS


class _NoKafka:
    """The reader's outlet with produce() a no-op: every record counts as produced."""

    def ring(self, *_args: Any, **_kw: Any) -> Callable[[bytes, int], int]:
        return lambda _value, _seq: PRODUCED


class _Rings:
    """What a Reader needs of PerfBuffers here: the rings (nothing is mapped)."""

    def __init__(self, rings: list[Ring]) -> None:
        self.rings = rings


def records(event_type: str, n: int = 1000, seed: int = 7) -> list[bytes]:
    """`n` records of a few hundred processes and cgroups, as a busy host sends them."""
    rng = random.Random(seed)
    out = []
    for seq in range(n):
        pid = rng.randrange(100, 600)
        comm = b"proc%d" % (pid % 40)
        out.append(
            BUILDERS[event_type](
                seq=seq, pid=pid, tid=pid, ppid=pid - 1, cgroup_id=rng.randrange(1, 50), comm=comm
            )
        )
    return out


def time_handler(
    handler: Callable[[Any, int, int], None], raws: list[bytes], total: int, reps: int
) -> list[float]:
    """µs per record of each of `reps` runs over `total` records."""
    bufs = [ct.create_string_buffer(r, len(r)) for r in raws]
    args = [(ct.addressof(b), len(r)) for b, r in zip(bufs, raws, strict=True)]
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        n = 0
        while n < total:
            for addr, size in args:
                handler(None, addr, size)
            n += len(args)
        out.append((time.perf_counter() - t0) / n * 1e6)
    return out


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.encode", description=__doc__.split("\n")[0])
    p.add_argument("records", nargs="?", type=int, default=300_000, help="records per type and run")
    p.add_argument("--types", default="", help="comma-separated event types (default: every stream type)")
    args = p.parse_args()
    types = args.types.split(",") if args.types else list(BUILDERS)
    unknown = set(types) - set(BUILDERS)
    if unknown:
        p.error(f"unknown event types {sorted(unknown)}; known: {', '.join(BUILDERS)}")
    rings = [Ring(i, i, t, 0, -1) for i, t in enumerate(types)]
    arena = Arena(1, len(types), 1)
    perf: PerfBuffers = _Rings(rings)  # type: ignore[assignment]
    reader = Reader(0, [0], config.validate({}), perf, arena, "node-1", "0f0e0d0c-boot")
    reader.outlet = _NoKafka()  # type: ignore[assignment]
    print(f"{'event type':14}  µs/record (best of 5, median)")
    for ring in rings:
        runs = time_handler(reader.sample_handler(ring), records(ring.event_type), args.records, 5)
        produced = arena.block(0, ring.type_idx, 0)[PRODUCED]
        assert produced == 5 * -(-args.records // 1000) * 1000, "every record must reach produce()"
        print(f"{ring.event_type:14}  {min(runs):5.2f}  {statistics.median(runs):5.2f}")


if __name__ == "__main__":
    main()
