"""A reader's way to Kafka: the Sink alone, or the Sink with the reader's spool behind it
(reader/spooling.py), and the produce of one (event type, CPU) block of the arena through it.

The produce is made per key: a CPU's ring keys every record by the host, a ring shared by every CPU
(kernel/ringbuf.py, read by reader 0) keys each record by its own process_id (the processes topic).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import structlog

from ..config import Config
from ..kafka.client import DEFAULTS
from ..kafka.framing import Framing
from ..kafka.sink import RingProduce, Sink
from ..ledger.arena import SPOOL_BYTES, Arena
from ..records import codec
from ..records.catalog import EventType
from ..spool.frame import SegmentHeader
from ..spool.scan import segment_bytes
from ..spool.store import Spool, reader_dir
from . import handler
from .handler import ProduceFor
from .spooling import SpoolOutlet

log = structlog.get_logger("reader")


def open_outlet(
    cfg: Config,
    sink: Sink,
    arena: Arena,
    *,
    reader: int,
    run_id: str,
    host: str,
    boot_id: str,
    blocks: Sequence[tuple[int, int]],
) -> Sink | SpoolOutlet:
    """The SpoolOutlet over `sink` when the supervisor could use spool.dir, else `sink` itself.
    `blocks`: every (type index, cpu) the reader counts (its rings' and the shared rings' of every CPU)."""
    sc = cfg.spool
    root = arena.meta.get("spool_dir", "")  # the supervisor's: "" when it could not use it
    if not sc.enabled or not root:
        return sink
    identity = SegmentHeader(run_id, host, boot_id, reader, 0)
    words, others = (
        arena.words,
        [arena.reader_word(r, SPOOL_BYTES) for r in range(arena.readers) if r != reader],
    )
    try:
        spool = Spool(
            reader_dir(Path(root), reader),
            identity,
            max_bytes=sc.max_bytes,  # shared: what the others hold is what this one cannot take
            segment_bytes=segment_bytes(sc.max_bytes // max(1, arena.readers)),
            others=lambda: sum(words[w] for w in others),
        )
    except OSError as e:  # checked at start by the supervisor; the disk may have changed since
        log.error("spool_unavailable", reader=reader, dir=sc.dir, error=e.strerror)
        return sink
    meta = arena.meta
    linger_ms = float(cfg.kafka.client.get("linger.ms", DEFAULTS["linger.ms"]))
    return SpoolOutlet(
        sink,
        spool,
        arena,
        reader=reader,
        run_id=run_id,
        blocks=blocks,
        type_index={tid: i for i, tid in enumerate(meta.get("type_ids", ()))},
        runs=meta.get("runs", ()),
        # a message may wait linger.ms before it is even sent: no stall before that
        after_s=(sc.after_ms + linger_ms) / 1000.0,
        fsync_s=sc.fsync_interval_ms / 1000.0,
    )


def block_produce(
    outlet: Sink | SpoolOutlet,
    arena: Arena,
    *,
    reader: int,
    event: EventType,
    type_idx: int,
    cpu: int,
    topic: str,
    frame: Framing,
) -> ProduceFor:
    """The produce of one (type, CPU) block, per key: its delivery reports count in that block."""
    base = arena.base(reader, type_idx, cpu)
    headers = frame.headers
    if isinstance(outlet, SpoolOutlet):
        seq_of = codec.field_reader(frame.encoder.schema, len(frame.prefix), "seq")
        hook = outlet.purge_hook(base, event.id, cpu, topic, headers, seq_of)
        on_spooled = handler.delivery_handler(arena, base, hook)
        spool = outlet

        def spooled(key: bytes) -> RingProduce:
            return spool.ring(topic, key, headers, on_spooled, type_id=event.id, cpu=cpu)

        return spooled
    on_delivery = handler.delivery_handler(arena, base)
    sink = outlet

    def direct(key: bytes) -> RingProduce:
        return sink.ring(topic, key, headers, on_delivery)

    return direct
