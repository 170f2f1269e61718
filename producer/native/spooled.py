"""The native engine beside a reader's spool: the spool seam of src/engine.h, wired to the reader's
SpoolOutlet (producer/reader/spooling.py), the same outlet the Python data plane produces through.

- The outlet decides when the reader spools and says so in the arena's SPOOLING word of the reader;
  the engine reads that word per record and, while it is set, hands each framed record to `spill`
  instead of librdkafka. So does the record a full queue refuses, which turns the reader to its
  spool (Sink.ring does the same on the Python plane).
- At a stop, a message the engine's librdkafka gives back when it is purged goes to the outlet's
  stragglers (`purged`), to be written to the spool and counted `respooled`, as the Python plane's are.
- The engine is the outlet's `Direct`: a second producer beside the outlet's sink, which replays the
  spool. The outlet keeps the order between the two by waiting (reader/spooling.py).

Both callbacks run in the engine's thread with the GIL taken for them, once per record only while the
reader spools: the steady state costs one load of the SPOOLING word per record.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog

from ..ledger.arena import SPOOLED, SPOOLING
from ..records import catalog, codec

if TYPE_CHECKING:
    from ..kafka.framing import Framing
    from ..reader.process import Reader
    from ..reader.spooling import SpoolOutlet
    from . import _dataplane

log = structlog.get_logger("reader")


class EngineDirect:
    """The engine as the outlet's Direct."""

    def __init__(self, engine: _dataplane.Engine) -> None:
        self.engine = engine

    def outstanding(self) -> int:
        return self.engine.outstanding()

    def poll(self, timeout_s: float) -> None:
        self.engine.poll(int(timeout_s * 1000))

    def purge(self) -> int:
        # close() with a deadline already reached: no flush (the outlet flushed while Kafka answered),
        # then the purge, whose messages come back through `purged`
        return self.engine.close(time.monotonic_ns())


def attach(engine: _dataplane.Engine, outlet: SpoolOutlet, reader: Reader, frames: list[Framing]) -> None:
    """Give the engine the reader's spool: `frames[i]` is the framing of the engine's ring i (add_ring's
    order, reader.rings')."""
    arena, key = reader.arena, reader.key
    spills, keeps = [], []
    for ring, frame in zip(reader.rings, frames, strict=True):
        event = catalog.BY_NAME[ring.event_type]
        topic = reader.cfg.kafka.topic(ring.event_type)
        spills.append(outlet.spiller(topic, key, frame.headers, type_id=event.id, cpu=ring.cpu))
        seq_of = codec.field_reader(frame.encoder.schema, len(frame.prefix), "seq")
        base = arena.base(reader.index, ring.type_idx, ring.cpu)
        keeps.append(outlet.straggler(base, event.id, ring.cpu, topic, frame.headers, seq_of))
    gate = outlet.gate

    def spill(ring: int, value: bytes, seq: int, full: bool) -> bool:
        try:
            if full and not gate.spooling:
                gate.on_full()  # the outlet turns the reader to its spool: SPOOLING is set from now on
            return spills[ring](value, seq) == SPOOLED
        except Exception as e:  # the engine's callback must not raise: the record is counted spool_full
            log.error("spool_append_failed", reader=reader.index, error=repr(e))
            return False

    def purged(ring: int, value: bytes) -> bool:
        try:
            keeps[ring](key, value)
            return True
        except Exception as e:  # not kept: the engine counts it shutdown
            log.error("spool_respool_failed", reader=reader.index, error=repr(e))
            return False

    engine.spool(arena.reader_word(reader.index, SPOOLING), spill, purged)
    outlet.direct = EngineDirect(engine)
