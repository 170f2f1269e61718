"""The reader's perf callback on corrupt input: every record counted once, nothing raised, keeps going.

This runs the real handler (the function BCC calls through ctypes) with the
real arena; only Kafka is replaced, by a sink that records what it was given.
"""

from __future__ import annotations

import ctypes as ct
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from producer import config
from producer.kernel.perfbuf import Ring
from producer.ledger import arena as ledger
from producer.ledger.arena import Arena
from producer.ledger.book import KernelCounts, Ledger
from producer.reader.process import Reader
from producer.records import codec
from tests.support.records import exec_record


@dataclass
class FakeSink:
    """The reader's outlet: each ring's produce records the value, or refuses it as a full queue would."""

    refuse: bool = False
    produced: list[bytes] = field(default_factory=list)

    def ring(self, topic: str, key: bytes, headers: Any, on_delivery: Any) -> Any:
        def produce(value: bytes, seq: int) -> int:
            if self.refuse:
                return ledger.QUEUE_FULL
            self.produced.append(value)
            return ledger.PRODUCED

        return produce


@dataclass
class FakePerf:
    rings: list[Ring]


def make_reader(cpu: int = 0) -> tuple[Reader, Any, Arena]:
    ring = Ring(index=0, type_idx=0, event_type="process_exec", cpu=cpu, fd=-1)
    arena = Arena(readers=1, types=1, cpus=cpu + 1)
    reader = Reader(0, [cpu], config.validate({}), FakePerf([ring]), arena, "node", "boot")  # type: ignore[arg-type]
    reader.sink = reader.outlet = FakeSink()  # type: ignore[attr-defined,assignment]
    return reader, reader.sample_handler(ring), arena


def feed(handler: Any, raw: bytes) -> None:
    buf = ct.create_string_buffer(raw, max(1, len(raw)))
    handler(None, ct.addressof(buf), len(raw))


def counts(arena: Arena, cpu: int = 0) -> dict[str, int]:
    block = arena.block(0, 0, cpu)
    out = {name: block[i] for i, name in enumerate(ledger.READER_REASONS)}
    out["delivery_failed"] = sum(block[ledger.DELIVERY_FAILED :])
    return out


def test_corrupt_records_are_counted_and_skipped_and_good_ones_flow() -> None:
    reader, handler, arena = make_reader()
    corrupt = [
        b"",  # empty
        exec_record(seq=1)[:50],  # truncated
        exec_record(seq=2, type_id=9),  # unknown type
        exec_record(seq=3, pid=0),  # out of range
        exec_record(seq=4, args_size=60000 % 65536),  # argv runs past the record
        exec_record(seq=5, flags=0xFF00),  # unknown flags
        b"\xff" * 400,  # garbage
    ]
    good = [exec_record(seq=10), exec_record(seq=11, argv=[b"\xff\xfe", b"x"]), exec_record(seq=12)]
    for raw in corrupt + good:
        feed(handler, raw)
    c = counts(arena)
    assert c["decode_error"] == len(corrupt)
    assert c["produced"] == len(good)
    assert c["escaped"] == 1  # the bad-UTF-8 one was delivered, escaped, not dropped
    assert reader.state.handled == len(corrupt) + len(good)
    schemas = codec.load_all()
    argvs = [codec.decode(v, schemas)[1]["argv"] for v in reader.sink.produced]  # type: ignore[attr-defined]
    assert argvs[1] == ["\\xff\\xfe", "x"]


def test_queue_full_is_a_counted_drop() -> None:
    reader, handler, arena = make_reader()
    reader.sink.refuse = True  # type: ignore[attr-defined]
    for s in range(5):
        feed(handler, exec_record(seq=s))
    assert counts(arena)["queue_full"] == 5
    assert counts(arena)["produced"] == 0


def test_a_record_from_the_wrong_cpu_buffer_is_corrupt() -> None:
    _, handler, arena = make_reader(cpu=1)
    feed(handler, exec_record(cpu=0))
    assert counts(arena, cpu=1)["decode_error"] == 1


def test_a_successor_skips_the_record_its_dead_predecessor_already_counted() -> None:
    reader, handler, arena = make_reader()
    feed(handler, exec_record(seq=0))
    feed(handler, exec_record(seq=1))
    lg = Ledger(arena, ["process_exec"], [(0,)])
    lg.retire(0)  # the reader "died" after counting seq 1, before the ring advanced
    successor = reader.sample_handler(reader.rings[0])  # same slot, fresh counters, as after a restart
    feed(successor, exec_record(seq=1))  # the ring hands seq 1 out again
    feed(successor, exec_record(seq=2))
    assert counts(arena)["produced"] == 1  # only seq 2: seq 1 was counted before the crash
    snap = lg.snapshot(lambda: {(0, 0): KernelCounts(3, 0, 0)})
    assert snap.get("process_exec", "reader_crash") == 2  # seq 0 and 1: handed to Kafka, never acked
    assert snap.balances["process_exec"].in_flight == 1  # seq 2 waits for its ack; nothing counted twice


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=600), max_size=20))
def test_fuzz_the_handler_never_raises_and_counts_every_record(raws: list[bytes]) -> None:
    _reader, handler, arena = make_reader()
    for raw in raws:
        feed(handler, raw)
    c = counts(arena)
    assert c["decode_error"] + c["produced"] + c["encode_error"] + c["delivery_failed"] == len(raws)
