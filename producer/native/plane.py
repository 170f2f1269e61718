"""A reader on the native data plane: the Python half, which runs between the engine's calls.

The engine (src/engine.c) does the per-record work; this loop does what is rare or slow:
it reacts to the stop signal, builds the entry of a cgroup the engine has not seen (the record
waits in its ring meanwhile, so even a new container's first record gets its id; fields.py),
re-measures the boot-to-wall clock offset every second, logs librdkafka's lines, and at the end
drains, flushes, purges and closes the books exactly as reader/process.py does.

A signal reaches the engine through Python's wakeup fd: the C-level handler writes a byte
into a pipe the engine polls, so a stop is seen at once even while the engine waits. The engine
releases the GIL while it works, so the reader's Kubernetes resolver thread runs meanwhile.

The shared rings (the processes stream: one BPF ring buffer for all CPUs, read by reader 0) are read
here with the Python path's handler and a producer of their own: the engine waits on their fds too
and returns when one is readable. Their records are one per exec, fork and exit of the node, not per
event, so they do not need the engine's speed; the engine's own records never wait for them.

With a spool, that second producer is also the one that replays it, through the reader's SpoolOutlet
(reader/spooling.py), exactly as on the Python plane; the engine spills to the same outlet (spooled.py),
and this loop gives the outlet its turn (tick) at least every WATCH_MS, every TICK_MS while it spools.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING

import structlog

from ..kafka.client import LibrdkafkaLog, librdkafka_module
from ..kafka.framing import framing
from ..kafka.sink import Sink
from ..kernel.ringbuf import RingPoller
from ..records import catalog
from ..records.process_exec import ExecOptions
from . import fields, spooled, tables

if TYPE_CHECKING:
    from ..ledger.arena import Arena
    from ..reader.process import Reader
    from ..reader.spooling import SpoolOutlet

log = structlog.get_logger("reader")

# How long the engine may run before Python looks around (the clock offset is re-measured this often).
RUN_MS = 1000
# ...with a spool: the outlet looks for a stall of spool.after_ms (100 ms at least; 2 s by default) while
# Kafka keeps up, and replays in turns of _REPLAY_SLICE_S while it spools. Each return leaves the rings
# unread for the Python turn, so they are as rare as the spool allows.
WATCH_MS = 50
TICK_MS = 20


class NativePlane:
    def __init__(self, reader: Reader) -> None:
        from . import _dataplane as dp

        self.dp = dp
        self.r = reader
        cfg = reader.cfg
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        self._wake = (wake_r, wake_w)  # open for the process's life
        client_id = f"ebpf-producer-{reader.ctx.host}-r{reader.index}"
        reasons, codes = tables.ledger_reasons()
        self.engine = dp.Engine(
            tables=tables.encoder_tables(
                reader.ctx.host, reader.ctx.boot_id, reader.ctx.option("process_exec", ExecOptions)
            ),
            words=reader.arena.words,
            reasons=reasons,
            codes=codes,
            conf=tables.producer_conf(cfg.kafka, client_id, spool=cfg.spool.enabled),
            cimpl_path=librdkafka_module(),
            key=reader.key,
            wakeup_fd=wake_r,
            max_block_ms=cfg.kafka.max_block_ms,
            latency_ms=cfg.readers.max_latency_ms,
        )
        self.librdkafka_log = LibrdkafkaLog(client_id)
        arena = reader.arena
        frames = []
        for ring in reader.rings:
            event = catalog.BY_NAME[ring.event_type]
            # `reader` lets a consumer (and the CPU-group test) see which reader carried a record
            frame = framing(event.schema, reader.schema_ids, reader=str(reader.index), run_id=reader.run_id)
            frames.append(frame)
            self.engine.add_ring(
                ring.fd,
                reader.perf.page_cnt,
                ring.cpu,
                event.id,
                arena.base(reader.index, ring.type_idx, ring.cpu),
                journal_of(arena, ring.type_idx, ring.cpu),
                cfg.kafka.topic(ring.event_type),
                frame.prefix,
                [(k, v) for k, v in frame.headers if isinstance(v, bytes)],  # framing makes bytes only
            )
        self.engine.set_clock(reader.state.boot_to_wall_ns)
        # the shared rings, on the Python path's handler, and the spool's replay: a producer of their own
        self.sink: Sink | None = None
        self.spooling: SpoolOutlet | None = None
        self.shared: list[RingPoller] = []
        if reader.shared or cfg.spool.enabled:
            self.sink, self.spooling = reader.open_sink("-py")
        if self.spooling is not None:
            spooled.attach(self.engine, self.spooling, reader, frames)
        if reader.shared:
            self.shared = reader.map_shared()
            for shared in reader.shared:
                self.engine.watch(shared.fd)

    def run(self) -> int:
        from ..reader.process import EXIT_PRODUCER_FATAL, boot_to_wall_ns

        r = self.r
        log.info(
            "reader_started",
            reader=r.index,
            cpus=list(r.cpus),
            pid=os.getpid(),
            spool=self.spooling is not None,
            data_plane="native",
        )
        next_clock = time.monotonic() + 1.0
        busy = False  # replay work waiting: the engine does not wait in its poll
        while not r.stopping:
            status = self.engine.run(0 if busy else self._run_ms())
            if status == self.dp.RUN_FATAL:
                # librdkafka's idempotent producer cannot continue; a fresh one can
                log.error("reader_producer_fatal", reader=r.index, error=self.engine.stats()["fatal"])
                return EXIT_PRODUCER_FATAL
            if status == self.dp.RUN_MISS:
                self._resolve_cgroup()
            if self._serve_shared():
                log.error("reader_producer_fatal", reader=r.index, error=self.sink.fatal if self.sink else "")
                return EXIT_PRODUCER_FATAL
            if self.spooling is not None:
                busy = self.spooling.tick(time.monotonic())
            self._forward_logs()
            if time.monotonic() >= next_clock:
                self.engine.set_clock(boot_to_wall_ns())
                next_clock = time.monotonic() + 1.0
        return self._shutdown()

    def _run_ms(self) -> int:
        if self.spooling is None:
            return RUN_MS
        return TICK_MS if self.spooling.gate.spooling else WATCH_MS

    def _resolve_cgroup(self) -> None:
        """The engine stopped before a record of a cgroup it had no entry for: make one."""
        r = self.r
        cgroup_id = int(self.engine.stats()["missing"])
        f = fields.cgroup_fields(
            cgroup_id, r.containers.lookup, r.pods, r.containers.holds_for, r.cfg.k8s.refresh_s
        )
        self.engine.set_cgroup(cgroup_id, f.container, f.k8s, int(f.ttl_s * 1e9), f.unresolved)

    def _serve_shared(self) -> bool:
        """Take what the shared rings hold, serve their producer's reports; whether it failed fatally."""
        for ring in self.shared:
            ring.consume()
        if self.sink is None:
            return False
        self.sink.poll(0)
        return bool(self.sink.fatal)

    def _consume(self) -> int:
        """Drain every ring now (the shared ones too); returns the records handled."""
        before = self.r.state.handled
        self._serve_shared()
        total = self.r.state.handled - before
        while True:
            handled, paused = self.engine.consume()
            total += handled
            if not paused:
                return total
            self._resolve_cgroup()

    def _forward_logs(self) -> None:
        for level, facility, message in self.engine.take_logs():
            self.librdkafka_log.log(level, "%s", facility, message)

    def _shutdown(self) -> int:
        """Drain the rings (the programs are detached by now), flush, purge, close the books."""
        r = self.r
        t0 = time.monotonic()
        give_up = t0 + r.cfg.shutdown.timeout_s * 0.5
        self.engine.give_up_at(_ns(give_up))  # from then on a full queue costs a record no wait
        r.give_up_queue_at(give_up)
        r.await_detach()  # drained while the programs still run, the final kernel counts would not be final
        while self._consume() and time.monotonic() < give_up:
            pass
        drained = time.monotonic()
        if r.pods is not None:
            r.pods.stop()
        flush_until = t0 + max(1.0, r.cfg.shutdown.timeout_s - 2.0)
        if self.spooling is not None:  # both producers, then the purge: what they hold goes to the spool
            unresolved = self.spooling.close(flush_until)
        else:
            # One deadline for both producers, flushed one after the other: the shared rings' first, as
            # it holds few messages (one per exec, fork and exit), so it rarely takes from the engine's.
            unresolved = self.sink.close(flush_until) if self.sink is not None else 0
            unresolved += self.engine.close(_ns(flush_until))
        self._forward_logs()
        return r.stopped(t0, drained, unresolved, data_plane="native", corrupt=self.engine.stats()["corrupt"])


def journal_of(arena: Arena, type_idx: int, cpu: int) -> tuple[int, int, int, int, int]:
    """The journal's words of one (type, cpu) in the order the engine takes them."""
    return (*arena.journal_indices(type_idx, cpu), arena.suspect_index(type_idx, cpu))


def _ns(monotonic_s: float) -> int:
    """time.monotonic() seconds as the engine's CLOCK_MONOTONIC nanoseconds."""
    return int(monotonic_s * 1e9)


def run(reader: Reader) -> int:
    """Reader.run on the native data plane; returns the reader's exit code."""
    return NativePlane(reader).run()
