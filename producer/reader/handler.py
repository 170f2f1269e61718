"""The hot path: what a reader does with each record libbcc hands it, and with Kafka's answers.

Every record taken from a ring ends in exactly one ledger counter of this reader's arena block:
produced (then delivered, delivery_failed or shutdown when Kafka answers), spooled (reader/spooling.py
follows it from there), or one of decode_error, encode_error, queue_full, spool_full. The sample
handler runs as a ctypes callback, so it never raises (ctypes would print the error and drop the
record uncounted).

Per record, in order: copy the bytes, read the sequence number, skip the one record a dead
predecessor already counted (ledger/arena.py: the journal), parse + encode to Avro (the event
type's fast encoder, records/), produce, journal the outcome. Everything that can be looked up
once per ring is looked up when the handler is built.
"""

from __future__ import annotations

import ctypes as ct
from collections.abc import Callable, Sequence
from struct import Struct
from typing import Any

from ..errors import DecodeError
from ..k8s.resolver import PodResolver
from ..kafka import sink as sink_mod
from ..kafka.sink import RingProduce
from ..kernel.perfbuf import LostHandler, SampleHandler
from ..ledger.arena import (
    DECODE_ERROR,
    DELIVERED,
    ENCODE_ERROR,
    ESCAPED,
    K8S_UNRESOLVED,
    LOST,
    SHUTDOWN,
    Arena,
    Journal,
    delivery_slot,
)
from ..records.abi import COMMON, SEQ, SEQ_END, SEQ_OFFSET
from ..records.avro import ContainerOf
from ..records.catalog import EventType
from ..records.common import DecodeContext
from .pods import RingPods

# key -> the produce of one (type, CPU) block with that key bound (reader/outlet.py)
ProduceFor = Callable[[bytes], RingProduce]


class ReaderState:
    """What the reader's loop and its handlers share."""

    __slots__ = ("boot_to_wall_ns", "handled")

    def __init__(self, boot_to_wall_ns: int) -> None:
        self.handled = 0  # records taken from the rings (the drain loop watches it)
        self.boot_to_wall_ns = boot_to_wall_ns  # re-measured by the loop every second


def sample_handler(
    event: EventType,
    *,
    reader: int,
    cpu: int,
    type_idx: int,
    arena: Arena,
    state: ReaderState,
    ctx: DecodeContext,
    prefix: bytes,
    produce: RingProduce,
    container_of: ContainerOf,
    pods: PodResolver | None = None,
) -> SampleHandler:
    """`prefix`: the framing before every Avro body; `produce`: the ring's (value, seq) -> outcome;
    `pods`: the reader's Kubernetes resolver (None: attribution off, `k8s` always null)."""
    words = arena.words
    base = arena.base(reader, type_idx, cpu)
    journal = Journal(arena, type_idx, cpu).count
    suspect_i = arena.suspect_index(type_idx, cpu)
    ring_pods = None if pods is None else RingPods(pods, words, base + K8S_UNRESOLVED)
    encode = event.fast_encoder(ctx, prefix, ring_pods)
    string_at = ct.string_at
    seq_at = SEQ.unpack_from
    other_failure = delivery_slot("other")
    # Closure cells, not module globals: what the callback reads per record costs the least to read.
    seq_offset, seq_end = SEQ_OFFSET, SEQ_END
    decode_error, encode_error, escaped_i = DECODE_ERROR, ENCODE_ERROR, base + ESCAPED

    def on_sample(_cookie: Any, data: int, size: int) -> None:
        try:
            state.handled += 1
            seq = None
            outcome = decode_error
            try:
                raw = string_at(data, size)
                seq = seq_at(raw, seq_offset)[0] if len(raw) >= seq_end else None  # abi.peek_seq, inlined
                if seq is not None and words[suspect_i] == seq + 1:
                    words[suspect_i] = 0  # counted by the reader before us, which died before moving on
                    return
                outcome = encode_error  # the parse inside raises DecodeError for bad bytes
                value, escaped = encode(raw, cpu, state.boot_to_wall_ns, container_of)
                outcome = other_failure
                outcome = produce(value, seq)  # type: ignore[arg-type]  # the encoder raised if seq was None
                if escaped:
                    words[escaped_i] += 1
            except DecodeError:
                outcome = decode_error
            except Exception:
                pass  # `outcome` names the stage that failed
            journal(seq, base + outcome)
        except BaseException:
            words[base + decode_error] += 1  # last resort: counted, never raised into ctypes

    return on_sample


def shared_sample_handler(
    event: EventType,
    *,
    reader: int,
    type_idx: int,
    arena: Arena,
    state: ReaderState,
    ctx: DecodeContext,
    prefix: bytes,
    produce_for: Sequence[ProduceFor],
    key: bytes,
    container_of: ContainerOf,
    pods: PodResolver | None = None,
) -> SampleHandler:
    """sample_handler for a ring shared by every CPU (kernel/ringbuf.py): each record is counted in
    the block of the CPU its header names, and keyed by the event type's `key` (the processes topic:
    the image's process_id; else `key`). `produce_for`: per CPU, key -> that block's produce. A
    low-volume stream: clarity over the last microsecond."""
    words = arena.words
    cpus = range(arena.cpus)
    bases = [arena.base(reader, type_idx, cpu) for cpu in cpus]
    journals = [Journal(arena, type_idx, cpu).count for cpu in cpus]
    suspects = [arena.suspect_index(type_idx, cpu) for cpu in cpus]
    ring_pods = None if pods is None else RingPods(pods, words, bases[0] + K8S_UNRESOLVED)
    encode = event.fast_encoder(ctx, prefix, ring_pods)
    key_of = event.key
    boot = ctx.boot
    cpu_at = Struct("<I").unpack_from
    cpu_offset = COMMON.offset("hdr.cpu")

    def on_sample(_cookie: Any, data: int, size: int) -> None:
        cpu = 0  # a record too short to name its CPU is counted on CPU 0's row
        try:
            state.handled += 1
            seq = None
            outcome = DECODE_ERROR
            try:
                raw = ct.string_at(data, size)
                if len(raw) >= SEQ_END:
                    seq = SEQ.unpack_from(raw, SEQ_OFFSET)[0]
                    named = cpu_at(raw, cpu_offset)[0]
                    cpu = named if named in cpus else 0
                if seq is not None and words[suspects[cpu]] == seq + 1:
                    words[suspects[cpu]] = 0  # counted by the reader before us
                    return
                outcome = ENCODE_ERROR
                if ring_pods is not None:  # a miss is counted on the row of the record's CPU
                    ring_pods.index = bases[cpu] + K8S_UNRESOLVED
                value, escaped = encode(raw, cpu, state.boot_to_wall_ns, container_of)
                outcome = delivery_slot("other")
                k = (key_of(raw, boot) if key_of is not None else None) or key
                outcome = produce_for[cpu](k)(value, seq)  # type: ignore[arg-type]  # the encoder raised if seq was None
                if escaped:
                    words[bases[cpu] + ESCAPED] += 1
            except DecodeError:
                outcome = DECODE_ERROR
            except Exception:
                pass  # `outcome` names the stage that failed
            journals[cpu](seq, bases[cpu] + outcome)
        except BaseException:
            words[bases[cpu] + DECODE_ERROR] += 1  # last resort: counted, never raised into ctypes

    return on_sample


def lost_handler(arena: Arena, reader: int, type_idx: int, cpu: int) -> LostHandler:
    words = arena.words
    i = arena.base(reader, type_idx, cpu) + LOST

    def on_lost(_cookie: Any, n: int) -> None:
        words[i] += n

    return on_lost


def delivery_handler(
    arena: Arena, base: int, on_purged: Callable[[Any], None] | None = None
) -> Callable[[Any, Any], None]:
    """librdkafka's delivery report for one (reader, type, CPU) block -> its counter.

    `on_purged` (with a spool): a message given back by the purge at shutdown is handed to it instead
    of being counted as shutdown; the spool counts it (respooled) when it has written it.
    """
    words = arena.words
    delivered = base + DELIVERED
    classify = sink_mod.classify

    def on_delivery(err: Any, msg: Any) -> None:
        if err is None:
            words[delivered] += 1
            return
        reason = classify(err)
        if reason == SHUTDOWN and on_purged is not None:
            on_purged(msg)
        else:
            words[base + reason] += 1

    return on_delivery
