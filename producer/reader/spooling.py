"""A reader's way to Kafka with a spool: directly while Kafka keeps up, through the spool when it does
not, and back once the spool is replayed — one stream per reader, in order.

The seam (the native data plane adopts the same one; docs/design.md, "The spool"):

- **append**: a ring's produce (`ring`) either hands the record to librdkafka or, while `gate.spooling`,
  appends it to the spool as a frame (event type, CPU, seq, topic, key, headers, value) and counts it
  `spooled`, or `spool_full` when it does not fit;
- **replay**: `tick` (every loop) feeds the oldest frames to librdkafka, never more than `_WINDOW`
  outstanding and only while Kafka answers (a delivery report within spool.after_ms);
- **ack**: each replayed frame's delivery report counts its fate (AckJournal) and settles its byte in
  the segment's ack file; a segment is deleted once all its frames are settled.

Order. Everything a reader sends goes through one FIFO: librdkafka's queue, fed first directly, then
(from the first full queue or a stall of spool.after_ms) by the spool only, until the spool has no
unsent frame *and* nothing produced directly before it is still unanswered; only then does the reader
produce directly again, behind the replayed frames. librdkafka never times a message out
(message.timeout.ms 0 with a spool: kafka/client.py), so nothing it holds can fall out and be overtaken.
At shutdown, what librdkafka still holds is purged: replayed frames simply stay unsettled in the spool;
records produced directly are written, sorted by seq, into a segment placed right before the first
segment written after them (Spool.insert_segment), and counted `respooled`.

On the native data plane the engine produces directly with a librdkafka of its own (`Direct`), so
there are two FIFOs, and order is kept by waiting instead: the replay starts only once every record
produced directly is answered, and direct produce resumes only once every replayed frame is.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import structlog

from ..kafka import sink as sink_mod
from ..kafka.sink import DeliveryCallback, Gate, Headers, RingProduce, Sink
from ..ledger.arena import (
    DELIVERED,
    DELIVERY_FAILED,
    QUEUE_FULL,
    R_CORRUPT,
    R_DELIVERED,
    R_FAILED,
    R_TORN,
    REPLAY_DELIVERED,
    REPLAY_FAILED,
    RESPOOLED,
    SHUTDOWN,
    SPOOL_BYTES,
    SPOOL_CORRUPT,
    SPOOL_FULL,
    SPOOL_LOST,
    SPOOL_OK,
    SPOOL_OLDEST_US,
    SPOOL_REFUSING,
    SPOOL_STATE,
    SPOOLED,
    SPOOLING,
    AckJournal,
    Arena,
    pending,
)
from ..spool.frame import Envelope, crc32c
from ..spool.segment import Damaged, Lost, Record, Torn
from ..spool.store import Segment, Spool

log = structlog.get_logger("reader")

_WINDOW = 20_000  # replayed + direct messages librdkafka may hold: memory stays flat, and it is ample
_REPLAY_BATCH = 5_000  # frames per loop turn at most, so the perf rings are read between batches
# ...and at most this long: on a busy machine 5 000 frames can take long enough for a 64-page ring of a
# busy CPU to overflow (submit_failed) while the replay keeps the reader from reading it.
_REPLAY_SLICE_S = 0.01
_PROGRESS_S = 0.02  # how often a reader that is not spooling looks for delivery reports (tick)
_ENVELOPES = 1024  # decoded envelopes kept for replay (a CPU's ring has one; the processes ring, many)
SeqOf = Callable[[bytes], int]
Targets = tuple[int, int, int]  # counter words: delivered, first failure slot, corrupt


class Direct(Protocol):
    """A producer beside the outlet's sink that produces the reader's records itself (the native
    engine: producer/native/spooled.py), counting them in the same arena words."""

    def outstanding(self) -> int: ...

    def poll(self, timeout_s: float) -> None: ...

    def purge(self) -> int:
        """Purge what it holds (its messages come back through the outlet's stragglers); returns
        what is still unresolved."""
        ...


class SpoolOutlet:
    """The reader's Sink with a spool behind it. One per reader process."""

    def __init__(
        self,
        sink: Sink,
        spool: Spool,
        arena: Arena,
        *,
        reader: int,
        run_id: str,
        blocks: Sequence[tuple[int, int]],  # this reader's (type index, cpu)
        type_index: Mapping[int, int],  # catalog type id -> this run's type index
        runs: Sequence[str],  # earlier runs of the replay table, by slot
        after_s: float,
        fsync_s: float,
    ) -> None:
        self.sink = sink
        self.spool = spool
        self.arena = arena
        self.words = arena.words
        self.reader = reader
        self.run_id = run_id
        self.blocks = [arena.base(reader, t, cpu) for t, cpu in blocks]
        self.type_index = dict(type_index)
        self.run_slots = {r: i for i, r in enumerate(runs)}
        self.unknown_type = arena.layout.replay_types - 1
        self.after_s = after_s
        self.fsync_s = fsync_s
        self.gate = Gate(self._queue_full)
        self.journal = AckJournal(arena, reader)
        self.last_progress = time.monotonic()
        self.next_sync = self.last_progress + fsync_s
        self.stragglers: list[tuple[int, int, int, bytes, int, bytes, SeqOf]] = []
        self._envelopes: dict[bytes, Envelope] = {}
        self._held: tuple[Segment, Record] | None = None  # a frame the full queue did not take yet
        self._unaccounted = 0
        self._replay_answers = 0  # delivery reports of replayed frames (progress: tick)
        self._replaying = 0  # replayed frames librdkafka holds (len(sink) counts its events too)
        self._last_answers = -1
        self._next_progress = 0.0
        self.direct: Direct | None = None
        self.gate.spooling = spool.has_unsent()  # what an earlier run or a dead predecessor left
        if self.gate.spooling:
            log.info("spool_replay_pending", reader=reader, segments=len(spool.segments), bytes=spool.bytes)
        self.stats()

    # -- append ----------------------------------------------------------------------------------

    def ring(
        self,
        topic: str,
        key: bytes,
        headers: Headers,
        on_delivery: DeliveryCallback,
        *,
        type_id: int,
        cpu: int,
    ) -> RingProduce:
        spill = self.spiller(topic, key, headers, type_id=type_id, cpu=cpu)
        return self.sink.ring(topic, key, headers, on_delivery, spill=spill, gate=self.gate)

    def spiller(self, topic: str, key: bytes, headers: Headers, *, type_id: int, cpu: int) -> RingProduce:
        """A record to the spool: `spooled`, or `spool_full` when it does not fit."""
        append = self.spool.append
        spooled, full = SPOOLED, SPOOL_FULL
        # Made at the first spill: a shared ring makes one produce per record (its key), mostly sent
        # straight to librdkafka, so the envelope is not paid for until it is needed.
        env, env_crc = b"", 0

        def spill(value: bytes, seq: int) -> int:
            nonlocal env, env_crc
            if not env:
                env = Envelope(topic, key, headers).encode()
                env_crc = crc32c(env)
            return spooled if append(type_id, cpu, seq, env, env_crc, value) else full

        return spill

    def purge_hook(
        self, base: int, type_id: int, cpu: int, topic: str, headers: Headers, seq_of: SeqOf
    ) -> Callable[[Any], None]:
        """For a ring's direct delivery reports: a message given back by the purge at shutdown is kept
        for the spool instead of being counted as `shutdown` (`respool`). Its key is the message's own
        (a shared ring's records each have theirs); the envelopes are made once per key."""
        keep = self.straggler(base, type_id, cpu, topic, headers, seq_of)
        value_of, key_of = sink_mod.message_value, sink_mod.message_key

        def hook(msg: Any) -> None:
            keep(key_of(msg), value_of(msg))

        return hook

    def straggler(
        self, base: int, type_id: int, cpu: int, topic: str, headers: Headers, seq_of: SeqOf
    ) -> Callable[[bytes, bytes], None]:
        """Keep a purged message (key, value) of this block for the respool at close."""
        envelopes: dict[bytes, tuple[bytes, int]] = {}
        keep = self.stragglers.append

        def kept(key: bytes, value: bytes) -> None:
            env = envelopes.get(key)
            if env is None:
                encoded = Envelope(topic, key, headers).encode()
                env = envelopes[key] = (encoded, crc32c(encoded))
            keep((base, type_id, cpu, env[0], env[1], value, seq_of))

        return kept

    def _queue_full(self) -> None:
        self._start_spooling("queue_full")

    def _start_spooling(self, why: str) -> None:
        self.gate.spooling = True
        self.spool.start_spooling()
        self.words[self.arena.reader_word(self.reader, SPOOLING)] = 1
        log.warning("spooling", reader=self.reader, reason=why, outstanding=self._outstanding())

    # -- the loop's turn: notice a stall, replay, come back ---------------------------------------

    def tick(self, now: float) -> bool:
        """After the loop polled librdkafka: returns True while there is replay work left for the next
        turn (the loop then does not block in its perf poll).

        Progress is a delivery report, nothing else: poll() also serves librdkafka's log lines and
        error events, which keep coming (one per reconnect attempt) while the brokers are away.
        Looked for at most every _PROGRESS_S while not spooling: summing the arena's answers takes a
        few µs, a loop woken for a handful of records turns thousands of times a second, and a stall is
        a matter of spool.after_ms (100 ms at least)."""
        if self.gate.spooling or now >= self._next_progress:
            self._next_progress = now + _PROGRESS_S
            answers = self._answers()
            if answers != self._last_answers or not self._outstanding():
                self.last_progress = now
                self._last_answers = answers
        stalled = now - self.last_progress > self.after_s
        if stalled and not self.gate.spooling:
            self._start_spooling("stalled")
        busy = False
        if self.gate.spooling:
            # with a Direct beside the sink, replayed frames could overtake what it still holds
            if not stalled and (self.direct is None or self._direct_pending() == 0):
                busy = self._replay(_REPLAY_BATCH)
            # ...and what it produces next could overtake replayed frames the sink still holds
            replayed = self.direct is None or not self._replaying
            if not busy and replayed and not self.spool.has_unsent() and self._direct_pending() == 0:
                self.gate.spooling = False
                self.words[self.arena.reader_word(self.reader, SPOOLING)] = 0
                log.info("spool_replayed", reader=self.reader, bytes=self.spool.bytes)
        if now >= self.next_sync:
            self.spool.sync()
            self.stats()
            self.next_sync = now + self.fsync_s
        return busy

    def _outstanding(self) -> int:
        return len(self.sink) + (self.direct.outstanding() if self.direct is not None else 0)

    def _answers(self) -> int:
        """Delivery reports received so far: direct ones (in the arena) and replayed ones."""
        w, lo, hi = self.words, DELIVERY_FAILED, REPLAY_FAILED
        direct = sum(w[b + DELIVERED] + sum(w[b + lo : b + hi]) for b in self.blocks)
        return direct + self._replay_answers

    def _direct_pending(self) -> int:
        w = self.words
        return sum(pending(w[b : b + REPLAY_FAILED]) for b in self.blocks)

    def _replay(self, limit: int) -> bool:
        """Hand up to `limit` frames to librdkafka; True if more could be sent at once. False too when the
        window or librdkafka's queue is full: then only delivery reports make room, and a loop that did
        not block in its perf poll would spin a core for nothing."""
        room = min(limit, _WINDOW - len(self.sink))
        if room <= 0:
            return False
        sent = 0
        end = time.monotonic() + _REPLAY_SLICE_S
        while sent < room:
            if sent & 255 == 255 and time.monotonic() >= end:
                return True
            if self._held is not None:
                item: tuple[Segment, Any] | None = self._held
                self._held = None
            else:
                item = self.spool.next_entry()
            if item is None:
                return False
            seg, e = item
            if isinstance(e, Record):
                if not self._send(seg, e):
                    self._held = (seg, e)
                    return False
                sent += 1
            else:
                self._damage(seg, e)
        return True

    def _targets(self, seg: Segment, type_id: int, cpu: int) -> Targets | None:
        if seg.header.run_id == self.run_id:
            t = self.type_index.get(type_id)
            if t is None or cpu >= self.arena.cpus:
                return None
            b = self.arena.base(self.reader, t, cpu)
            return b + REPLAY_DELIVERED, b + REPLAY_FAILED, b + SPOOL_CORRUPT
        slot = self.run_slots.get(seg.header.run_id)
        if slot is None:
            return None
        rt = type_id if type_id < self.unknown_type else self.unknown_type
        b = self.arena.replay_base(self.reader, slot, rt)
        return b + R_DELIVERED, b + R_FAILED, b + R_CORRUPT

    def _send(self, seg: Segment, rec: Record) -> bool:
        """False when the queue has no room now (the frame is offered again next turn)."""
        env = self._envelopes.get(rec.env)
        if env is None:
            if len(self._envelopes) >= _ENVELOPES:  # a shared ring's keys differ per process: bounded
                self._envelopes.clear()
            env = self._envelopes[rec.env] = Envelope.decode(rec.env)
        targets = self._targets(seg, rec.head.type_id, rec.head.cpu)
        ordinal = rec.head.ordinal
        cb = self._on_replayed(seg, ordinal, targets)
        result = self.sink.offer(env.topic, rec.value, env.key, env.headers, cb)
        if result == QUEUE_FULL:
            return False
        seg.unsettled += 1
        if result is not None:  # refused at once (e.g. too large): its delivery report, now
            self._settle(seg, ordinal, targets, result)
        else:
            self._replaying += 1
        return True

    def _on_replayed(self, seg: Segment, ordinal: int, targets: Targets | None) -> DeliveryCallback:
        classify = sink_mod.classify

        def on_delivery(err: Any, _msg: Any) -> None:
            self._replaying -= 1
            r = classify(err)
            if r != SHUTDOWN:  # purged at shutdown: stays in the spool, unsettled, for the next run
                self._settle(seg, ordinal, targets, r)

        return on_delivery

    def _settle(self, seg: Segment, ordinal: int, targets: Targets | None, reason: int) -> None:
        if targets is None:
            self._unaccounted += 1
            if self._unaccounted == 1:
                log.warning("spool_unaccounted", reader=self.reader, run_id=seg.header.run_id)
            seg.settle(ordinal)
        else:
            ok, fail, _ = targets
            counter = ok if reason == DELIVERED else fail + (reason - DELIVERY_FAILED)
            self.journal.count(seg.id, ordinal, counter, seg.settle)
        self._replay_answers += 1
        seg.unsettled -= 1
        self.spool.release(seg)

    def _damage(self, seg: Segment, e: Any) -> None:
        """A frame that cannot be sent: counted (spool_corrupt; spool_torn, informational) and settled."""
        if isinstance(e, Damaged):
            targets = self._targets(seg, e.head.type_id, e.head.cpu)
            log.warning(
                "spool_frame_corrupt", reader=self.reader, segment=seg.path.name, ordinal=e.head.ordinal
            )
            if targets is None:
                seg.settle(e.head.ordinal)
            else:
                self.journal.count(seg.id, e.head.ordinal, targets[2], seg.settle)
        elif isinstance(e, Lost):
            log.warning("spool_frames_lost", reader=self.reader, segment=seg.path.name, count=e.count)
            slot = self.run_slots.get(seg.header.run_id)
            if slot is None:
                self.words[self.arena.reader_word(self.reader, SPOOL_LOST)] += e.count
            else:
                self.words[self.arena.replay_base(self.reader, slot, self.unknown_type) + R_CORRUPT] += (
                    e.count
                )
            self.spool.settle_lost(seg, e)
        elif isinstance(e, Torn):
            self.spool.cut(seg, e)
            slot = self.run_slots.get(seg.header.run_id)
            if slot is not None:
                known = e.head is not None and e.head.type_id < self.unknown_type
                rt = e.head.type_id if known and e.head is not None else self.unknown_type
                self.words[self.arena.replay_base(self.reader, slot, rt) + R_TORN] += 1

    # -- shutdown --------------------------------------------------------------------------------

    def close(self, deadline: float) -> int:
        """Replay and flush while Kafka answers (until `deadline`, monotonic), then purge: replayed frames
        stay in the spool, records produced directly go into it (respool). Returns what is unresolved."""
        direct = self.direct
        while time.monotonic() < deadline:
            self.sink.poll(0.05 if direct is None else 0.025)
            if direct is not None:
                direct.poll(0.025)
            now = time.monotonic()
            busy = self.tick(now)
            if not busy and not self._outstanding() and not self.spool.has_unsent():
                break
            if now - self.last_progress > self.after_s:
                break  # Kafka does not answer: what is left stays in (or goes to) the spool
        left = self.sink.purge() + (direct.purge() if direct is not None else 0)
        self._respool()
        self.spool.close()
        self.stats()
        return left

    def _respool(self) -> None:
        if not self.stragglers:
            return
        by_block: dict[int, list[tuple[int, int, int, bytes, int, bytes, SeqOf]]] = defaultdict(list)
        for s in self.stragglers:
            by_block[s[0]].append(s)
        ok = self.spool.insert_segment()
        moved = 0
        for base, items in by_block.items():
            keyed = []
            for item in items:
                try:
                    keyed.append((item[6](item[5]), item))
                except Exception:
                    keyed.append((-1, item))  # its own bytes did not decode: order it first, still kept
            keyed.sort(key=lambda k: k[0])
            for seq, (_, type_id, cpu, env, env_crc, value, _) in keyed:
                done = ok and self.spool.append(type_id, cpu, max(seq, 0), env, env_crc, value)
                self.words[base + (RESPOOLED if done else SHUTDOWN)] += 1
                moved += done
        log.info("spool_respooled", reader=self.reader, records=moved, dropped=len(self.stragglers) - moved)
        self.stragglers.clear()

    def stats(self) -> None:
        w, rw = self.words, self.arena.reader_word
        w[rw(self.reader, SPOOL_BYTES)] = max(0, self.spool.bytes)
        w[rw(self.reader, SPOOL_OLDEST_US)] = self.spool.oldest_us()
        refusing = time.monotonic() < self.spool.refusing_until
        w[rw(self.reader, SPOOL_STATE)] = SPOOL_REFUSING if refusing else SPOOL_OK
        w[rw(self.reader, SPOOLING)] = int(self.gate.spooling)
