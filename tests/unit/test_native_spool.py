"""The native engine beside the reader's spool (producer/native/spooled.py, src/engine.h's spool seam).

A real NativePlane over a real Reader whose one ring (file_open, cpu 0) is a memory ring laid out as
the kernel lays a perf ring out (tests/unit/perfring.py); a real arena, a real spool in a temporary
directory, and real librdkafka producers whose broker does not exist (127.0.0.1:9): what they hold is
never answered, so what the spool must do about it shows. The engine is held to what the Python plane
does through the same outlet: records go to the spool while the reader spools, the record a full queue
refuses starts the spooling, what the engine holds at a stop is respooled, and the two producers never
overtake each other.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from producer import config
from producer.kafka.framing import framing
from producer.kernel.perfbuf import Ring
from producer.ledger import arena as ledger
from producer.ledger.arena import Arena
from producer.native.plane import NativePlane
from producer.reader.process import Reader
from producer.reader.spooling import SpoolOutlet
from producer.records import catalog, codec
from producer.records.avro import NULL
from producer.spool.frame import Envelope
from producer.spool.segment import Record
from tests.support.records import open_record
from tests.unit.perfring import MemRing

FILE_OPEN = catalog.BY_NAME["file_open"]
NOWHERE = "127.0.0.1:9"


@dataclass
class OnePerf:
    rings: list[Ring]
    page_cnt: int


class Rig:
    def __init__(self, spool_dir: Path, **client: Any) -> None:
        self.cfg = config.validate(
            {
                "kafka": {"bootstrap_servers": NOWHERE, "client": client},
                "spool": {"dir": str(spool_dir), "after_ms": 100},
                "readers": {"data_plane": "native"},
                "events": {"file_open": {"enabled": True}},
            }
        )
        self.ring = MemRing(1)
        self.arena = Arena(
            readers=1, types=1, cpus=1, meta={"spool_dir": str(spool_dir), "type_ids": [FILE_OPEN.id]}
        )
        perf = OnePerf([Ring(0, 0, "file_open", 0, self.ring.fd)], 1)
        self.reader = Reader(0, [0], self.cfg, perf, self.arena, "node", "b00t", run_id="run-1")  # type: ignore[arg-type]
        self.plane = NativePlane(self.reader)
        self.plane.engine.set_cgroup(1, NULL, NULL)  # the records' cgroup: known, no container, no pod
        assert isinstance(self.plane.spooling, SpoolOutlet)
        self.outlet: SpoolOutlet = self.plane.spooling

    def feed(self, seqs: range) -> None:
        for s in seqs:
            self.ring.sample(open_record(seq=s))
        handled, paused = self.plane.engine.consume()
        assert (handled, paused) == (len(seqs), False)

    def block(self) -> list[int]:
        return list(self.arena.block(0, 0, 0))

    def frames(self) -> list[Record]:
        self.outlet.spool.sync()
        out = []
        while (item := self.outlet.spool.next_entry()) is not None:
            assert isinstance(item[1], Record)
            out.append(item[1])
        return out

    def spooling_word(self) -> int:
        return int(self.arena.words[self.arena.reader_word(0, ledger.SPOOLING)])

    def close(self) -> None:
        self.outlet.spool.close()
        self.ring.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.close()


def test_while_the_reader_spools_every_record_goes_to_the_spool_as_it_would_to_kafka(rig: Rig) -> None:
    rig.outlet._start_spooling("test")  # what a stall does
    rig.feed(range(5))
    b = rig.block()
    assert (b[ledger.SPOOLED], b[ledger.PRODUCED], rig.plane.engine.outstanding()) == (5, 0, 0)
    journal = rig.arena.journal_indices(0, 0)
    assert rig.arena.words[journal[0]] == 5  # done: seq + 1 of the last record counted
    frames = rig.frames()
    assert [(f.head.type_id, f.head.cpu, f.head.seq) for f in frames] == [
        (FILE_OPEN.id, 0, s) for s in range(5)
    ]
    env = Envelope.decode(frames[0].env)
    # the envelope the Python plane writes: the event's topic, the host key, the framing headers
    assert (env.topic, env.key) == (rig.cfg.kafka.topic("file_open"), b"node")
    assert dict(env.headers)["event_type"] == b"file_open" and dict(env.headers)["run_id"] == b"run-1"
    frame = framing(FILE_OPEN.schema, {})
    seq_of = codec.field_reader(frame.encoder.schema, len(frame.prefix), "seq")
    assert [seq_of(f.value) for f in frames] == list(range(5))


def test_a_full_spool_counts_spool_full(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    try:
        rig.outlet._start_spooling("test")
        rig.outlet.spool.limit = 0  # as a spool whose max_bytes the other readers hold
        rig.feed(range(3))
        b = rig.block()
        assert (b[ledger.SPOOL_FULL], b[ledger.SPOOLED]) == (3, 0)
    finally:
        rig.close()


def test_the_record_a_full_queue_refuses_turns_the_reader_to_its_spool_at_once(tmp_path: Path) -> None:
    rig = Rig(tmp_path, **{"queue.buffering.max.messages": 2})
    try:
        assert rig.spooling_word() == 0
        t0 = time.monotonic()
        rig.feed(range(6))
        assert time.monotonic() - t0 < 0.2  # no max_block_ms wait: the spool takes it
        b = rig.block()
        assert (b[ledger.PRODUCED], b[ledger.SPOOLED], b[ledger.QUEUE_FULL]) == (2, 4, 0)
        assert rig.outlet.gate.spooling and rig.spooling_word() == 1
        assert [f.head.seq for f in rig.frames()] == [2, 3, 4, 5]
    finally:
        rig.close()


def test_at_a_stop_what_the_engine_holds_is_respooled_in_order(rig: Rig) -> None:
    rig.feed(range(4))  # produced, never answered: no broker
    assert rig.plane.engine.outstanding() >= 4
    left = rig.outlet.close(time.monotonic() + 5)  # no answer within after_ms: purge, respool
    b = rig.block()
    assert (left, b[ledger.RESPOOLED], b[ledger.SHUTDOWN], ledger.pending(b)) == (0, 4, 0, 0)
    reopened = Rig(rig.outlet.spool.dir.parent)  # the next run finds them, in order
    try:
        assert [f.head.seq for f in reopened.frames()] == [0, 1, 2, 3]
    finally:
        reopened.close()


def test_replay_waits_for_the_engines_messages_and_direct_produce_for_the_replay(rig: Rig) -> None:
    rig.feed(range(2))  # direct, unanswered
    rig.outlet._start_spooling("test")
    rig.feed(range(2, 5))  # spooled
    rig.outlet.spool.sync()
    now = time.monotonic()
    rig.outlet.last_progress = now  # Kafka answers again (not stalled)
    rig.outlet.tick(now)
    # the engine still holds records older than the spooled ones: replayed now, they could overtake them
    assert rig.outlet.spool.has_unsent() and rig.outlet._replaying == 0
    base = rig.arena.base(0, 0, 0)
    rig.arena.words[base + ledger.DELIVERED] += 2  # what the engine's delivery reports write
    rig.outlet.tick(now)
    assert not rig.outlet.spool.has_unsent() and rig.outlet._replaying == 3
    # all sent, the engine's answered: still spooling, since the engine's next records could overtake
    # the replayed frames the other producer still holds
    assert rig.outlet.gate.spooling and rig.spooling_word() == 1
    rig.outlet.sink.purge()  # their fate is known (here: purged, left unsettled in the spool)
    rig.outlet.tick(now)
    assert not rig.outlet.gate.spooling and rig.spooling_word() == 0
    rig.feed(range(5, 6))
    assert rig.block()[ledger.PRODUCED] == 3


def test_a_spool_that_raises_is_counted_spool_full_and_the_engine_goes_on(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig.outlet._start_spooling("test")

    def broken(*_: Any) -> bytes:
        raise ValueError("a bug in the spool's code")

    monkeypatch.setattr(Envelope, "encode", broken)  # made at a ring's first spill
    rig.feed(range(2))
    b = rig.block()
    assert (b[ledger.SPOOL_FULL], b[ledger.SPOOLED], b[ledger.PRODUCED]) == (2, 0, 0)
