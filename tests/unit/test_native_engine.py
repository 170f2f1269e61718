"""The native engine's accounting, record by record, against the Python reader's rules (reader/handler.py).

The engine runs for real: it maps a ring (a memfd laid out as a perf ring, tests/unit/perfring.py),
decodes, encodes and hands records to a real librdkafka producer whose broker does not exist, and
counts into a real arena. What the Python reader's handler is held to in test_reader_handler.py,
this is held to here: every record counted once, by reason; the journal; the successor's skip;
queue_full with its bounded wait; delivery failures by error name; purge at shutdown.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producer import config
from producer.kafka.client import librdkafka_module
from producer.ledger import arena as ledger
from producer.ledger.arena import Arena
from producer.ledger.book import KernelCounts, Ledger
from producer.native import _dataplane as dp
from producer.native import tables
from producer.records.avro import NULL
from producer.records.process_exec import ExecOptions
from tests.support.records import open_record
from tests.unit.perfring import MemRing

FILE_OPEN = 3
NOWHERE = "127.0.0.1:9"  # nothing listens: produce() queues, deliveries never happen


class Rig:
    """One engine on one memory ring of cpu 0, reader 0, and its arena."""

    def __init__(
        self,
        pages: int = 1,
        start: int = 0,
        arena: Arena | None = None,
        ring: MemRing | None = None,
        **kafka: Any,
    ) -> None:
        self.ring = ring or MemRing(pages, start)
        self.arena = arena or Arena(readers=1, types=1, cpus=1)
        cfg = config.validate({"kafka": {"bootstrap_servers": NOWHERE, **kafka}, "spool": {"enabled": False}})
        reasons, codes = tables.ledger_reasons()
        self.wake = os.pipe()
        self.engine = dp.Engine(
            tables=tables.encoder_tables("node", "boot", ExecOptions()),
            words=self.arena.words,
            reasons=reasons,
            codes=codes,
            conf=tables.producer_conf(cfg.kafka, "ekp-test"),
            cimpl_path=librdkafka_module(),
            key=b"node",
            wakeup_fd=self.wake[0],
            max_block_ms=cfg.kafka.max_block_ms,
            latency_ms=100,
        )
        a = self.arena
        self.engine.add_ring(
            self.ring.fd,
            pages,
            0,
            FILE_OPEN,
            a.base(0, 0, 0),
            (*a.journal_indices(0, 0), a.suspect_index(0, 0)),
            "ekp-test.file_open",
            b"\xc3\x01" + bytes(8),
            [("event_type", b"file_open")],
        )
        self.engine.set_cgroup(1, NULL, NULL)  # the records' cgroup: known, no container, no pod

    def consume(self) -> int:
        handled, paused = self.engine.consume()
        assert not paused
        return int(handled)

    def counts(self) -> dict[str, int]:
        block = self.arena.block(0, 0, 0)
        out = {name: block[i] for i, name in enumerate(ledger.READER_REASONS)}
        out["delivery_failed"] = sum(block[ledger.DELIVERY_FAILED :])
        return out

    def close(self) -> None:
        self.engine.close(0)
        self.ring.close()
        for fd in self.wake:
            os.close(fd)


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    yield r
    r.close()


def test_every_record_is_counted_once_by_reason(rig: Rig) -> None:
    corrupt = [
        b"",
        open_record(seq=1)[:50],  # truncated
        open_record(seq=2, type_id=0),  # another type's record
        open_record(seq=3, pid=0),  # out of range
        open_record(seq=4, path_size=300),  # beyond the path buffer
        open_record(seq=5, cpu=1),  # not this ring's cpu
        b"\xff" * 300,
    ]
    good = [open_record(seq=10), open_record(seq=11, path=b"/tmp/\xff\xfe"), open_record(seq=12)]
    for raw in corrupt + good:
        rig.ring.sample(raw)
    rig.ring.lost(7)
    assert rig.consume() == len(corrupt) + len(good)
    c = rig.counts()
    assert c["decode_error"] == len(corrupt) and c["produced"] == len(good)
    assert c["escaped"] == 1 and c["lost"] == 7
    assert rig.ring.tail == rig.ring.head  # everything read was released to the kernel
    done, intent, slot, old = rig.arena.journal_indices(0, 0)
    w = rig.arena.words
    # the journal of the last record: done == intent == seq + 1, the counter it moved and its old value
    assert w[done] == w[intent] == 13 and w[slot] == rig.arena.base(0, 0, 0) + ledger.PRODUCED and w[old] == 2


def test_a_record_across_the_end_of_the_ring_arrives_whole() -> None:
    rig = Rig(start=4096 - 64)  # the first record starts 64 bytes before the end and wraps
    try:
        rig.ring.sample(open_record(seq=0, path=b"/wraps/" + b"w" * 100))
        rig.ring.sample(open_record(seq=1))
        assert rig.consume() == 2
        assert rig.counts()["produced"] == 2 and rig.counts()["decode_error"] == 0
    finally:
        rig.close()


def test_an_unknown_cgroup_stops_the_engine_before_its_record(rig: Rig) -> None:
    rig.ring.sample(open_record(seq=0))
    second = rig.ring.sample(open_record(seq=1, cgroup_id=77))
    handled, paused = rig.engine.consume()
    assert (handled, paused) == (1, True)
    assert rig.engine.stats()["missing"] == 77
    assert rig.ring.tail == second  # the record waits in the ring, uncounted
    assert rig.counts()["produced"] == 1
    rig.engine.set_cgroup(77, b"\x02\x80\x01" + b"a" * 64, NULL)
    assert rig.consume() == 1 and rig.counts()["produced"] == 2


def test_a_successor_skips_the_record_its_dead_predecessor_already_counted() -> None:
    first = Rig()
    try:
        first.ring.sample(open_record(seq=0))
        at = first.ring.sample(open_record(seq=1))
        first.consume()
        first.ring.set_tail(at)  # it "died" after counting seq 1, before releasing it to the kernel
        lg = Ledger(first.arena, ["file_open"], [(0,)])
        lg.retire(0)
        first.ring.sample(open_record(seq=2))
        successor = Rig(arena=first.arena, ring=first.ring)  # the same ring and slot, a new engine
        assert successor.consume() == 2  # seq 1 again, and seq 2
        assert successor.counts()["produced"] == 1  # only seq 2: seq 1 was counted before the crash
        snap = lg.snapshot(lambda: {(0, 0): KernelCounts(3, 0, 0)})
        assert snap.get("file_open", "reader_crash") == 2  # seq 0 and 1: handed to Kafka, never acked
        assert snap.balances["file_open"].in_flight == 1  # seq 2 waits for its ack; nothing counted twice
        successor.engine.close(0)
    finally:
        first.close()


def test_run_returns_to_python_for_a_signal_a_miss_or_the_time(rig: Rig) -> None:
    rig.ring.sample(open_record(seq=0))
    os.write(rig.wake[1], b"\x0a")  # what Python's C-level signal handler writes into the wakeup fd
    t0 = time.monotonic()
    assert rig.engine.run(5000) == dp.RUN_SIGNAL
    assert time.monotonic() - t0 < 1.0
    assert rig.counts()["produced"] == 1  # the ready ring was read before returning
    rig.ring.sample(open_record(seq=1, cgroup_id=99))
    assert rig.engine.run(5000) == dp.RUN_MISS and rig.engine.stats()["missing"] == 99
    rig.engine.set_cgroup(99, NULL, NULL)
    assert rig.engine.run(100) == dp.RUN_TIMEOUT
    assert rig.counts()["produced"] == 2


def test_a_pending_pod_counts_each_record_as_k8s_unresolved_until_its_entry_expires(rig: Rig) -> None:
    rig.engine.set_cgroup(5, NULL, NULL, 150_000_000, True)  # as producer/native/fields.py sets it
    for s in range(3):
        rig.ring.sample(open_record(seq=s, cgroup_id=5))
    assert rig.consume() == 3
    c = rig.counts()
    assert c["k8s_unresolved"] == 3 and c["produced"] == 3  # an info row: the records go out
    time.sleep(0.2)
    rig.ring.sample(open_record(seq=3, cgroup_id=5))
    assert rig.engine.consume() == (0, True)  # expired: Python is asked again
    rig.engine.set_cgroup(5, NULL, b"\x02" + b"\x00" * 12)  # resolved now (a stand-in for the pod's bytes)
    assert rig.consume() == 1 and rig.counts()["k8s_unresolved"] == 3


def test_queue_full_waits_once_then_counts_at_once() -> None:
    rig = Rig(max_block_ms=300, client={"queue.buffering.max.messages": 2})
    try:
        for s in range(6):
            rig.ring.sample(open_record(seq=s))
        t0 = time.monotonic()
        rig.consume()
        took = time.monotonic() - t0
        c = rig.counts()
        assert c["produced"] == 2 and c["queue_full"] == 4
        assert 0.3 <= took < 0.6, took  # the budget once, then no wait: saturated
    finally:
        rig.close()


def test_delivery_timeouts_are_counted_by_error_name() -> None:
    rig = Rig(client={"message.timeout.ms": 300})
    try:
        for s in range(3):
            rig.ring.sample(open_record(seq=s))
        rig.consume()
        assert rig.engine.close(time.monotonic_ns() + 10 * 10**9) == 0
        block = rig.arena.block(0, 0, 0)
        assert block[ledger.delivery_slot("_MSG_TIMED_OUT")] == 3
        assert ledger.pending(block) == 0
    finally:
        rig.close()


def test_what_is_left_at_shutdown_is_purged_and_counted_as_shutdown(rig: Rig) -> None:
    for s in range(4):
        rig.ring.sample(open_record(seq=s))
    rig.consume()
    assert rig.engine.close(time.monotonic_ns()) == 0  # no time to flush: purged
    c = rig.counts()
    assert c["shutdown"] == 4 and c["delivered"] == 0
    assert ledger.pending(rig.arena.block(0, 0, 0)) == 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=400), max_size=12))
def test_fuzz_every_record_is_counted(rig: Rig, raws: list[bytes]) -> None:
    before = rig.counts()
    for raw in raws:
        rig.ring.sample(raw)
    assert rig.consume() == len(raws)
    c = rig.counts()
    moved = sum(c[k] - before[k] for k in ("decode_error", "encode_error", "produced", "queue_full"))
    assert moved == len(raws)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # what it reports
def test_spool_callables_that_raise_cost_their_records_not_the_engine(rig: Rig) -> None:
    """The spool seam's callables (src/pyspool.c) must not unwind through C: one that raises is reported
    as unraisable, its record counted spool_full, its purged message shutdown."""
    word = rig.arena.reader_word(0, ledger.SPOOLING)

    def broken(*_: Any) -> bool:
        raise OSError("disk gone")

    rig.engine.spool(word, broken, broken)
    with pytest.raises(RuntimeError):
        rig.engine.spool(word, broken, broken)  # set once
    for s in range(2):
        rig.ring.sample(open_record(seq=s))
    rig.consume()  # produced: SPOOLING is 0
    rig.arena.words[word] = 1
    for s in range(2, 5):
        rig.ring.sample(open_record(seq=s))
    rig.consume()
    assert rig.engine.close(time.monotonic_ns()) == 0
    c = rig.counts()
    assert (c["produced"], c["spool_full"], c["shutdown"], c["spooled"]) == (2, 3, 2, 0)
    assert ledger.pending(rig.arena.block(0, 0, 0)) == 0
