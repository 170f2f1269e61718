"""The ring every CPU shares (the processes topic, read by reader 0) through the spool: each record is
counted on the row of the CPU it names, and its frame keeps its own key (its process_id), so a replay
sends it where the direct path would have.

The real handler, arena, outlet and spool files; the Sink is a real librdkafka producer that never
reaches a broker (the gate is turned to the spool, as a full queue would)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from producer import config
from producer.kafka.sink import Sink
from producer.kernel.perfbuf import Ring
from producer.kernel.ringbuf import SharedRing
from producer.ledger import arena as ledger
from producer.ledger.arena import Arena
from producer.ledger.book import KernelCounts, Ledger
from producer.reader.outlet import open_outlet
from producer.reader.process import Reader
from producer.reader.spooling import SpoolOutlet
from producer.records import catalog, processes
from producer.spool.frame import Envelope
from producer.spool.segment import Record
from tests.support.records import processes_record
from tests.unit.test_reader_handler import feed

PROCESSES = catalog.BY_NAME["processes"]


@dataclass
class NoPerf:
    rings: list[Ring]


def test_shared_ring_records_spool_on_their_cpus_rows_with_their_own_keys(tmp_path: Path) -> None:
    cfg = config.validate({"kafka": {"bootstrap_servers": "127.0.0.1:1"}, "spool": {"dir": str(tmp_path)}})
    arena = Arena(readers=1, types=1, cpus=2, meta={"spool_dir": str(tmp_path), "type_ids": [PROCESSES.id]})
    shared = SharedRing(0, "processes", -1)
    reader = Reader(
        0,
        [0],
        cfg,
        NoPerf([]),
        arena,
        "node",
        "b00t",
        shared=[shared],
        run_id="run-1",  # type: ignore[arg-type]
    )
    assert reader.blocks == [(0, 0), (0, 1)]  # reader 0 counts the shared ring's rows of every CPU
    sink = Sink(cfg.kafka, "test", lambda: False, spool=True)
    outlet = open_outlet(
        cfg, sink, arena, reader=0, run_id="run-1", host="node", boot_id="b00t", blocks=reader.blocks
    )
    assert isinstance(outlet, SpoolOutlet)
    reader.outlet = outlet
    outlet.gate.spooling = True  # as after a full queue: everything goes to the spool
    handler = reader.shared_handler(shared)
    raws = [processes_record(seq=1, cpu=1, pid=100), processes_record(seq=2, cpu=0, pid=200)]
    for raw in raws:
        feed(handler, raw)

    assert [arena.block(0, 0, cpu)[ledger.SPOOLED] for cpu in (0, 1)] == [1, 1]
    snap = Ledger(arena, ["processes"], [(0, 1)], [0]).snapshot(
        lambda: {(0, cpu): KernelCounts(1, 0, 0) for cpu in (0, 1)}
    )
    b = snap.balances["processes"]
    assert (b.seen, b.spooled, b.in_flight, b.dropped) == (2, 2, 2, 0)

    outlet.spool.sync()
    frames = []
    while (item := outlet.spool.next_entry()) is not None:
        assert isinstance(item[1], Record)
        frames.append(item[1])
    assert [f.head.cpu for f in frames] == [1, 0]
    keys = [Envelope.decode(f.env).key for f in frames]
    assert keys == [processes.key(raw, "b00t") for raw in raws]
    assert keys[0] != keys[1] and b"node" not in keys
    outlet.spool.close()
