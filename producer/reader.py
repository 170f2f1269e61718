"""A reader process: its CPUs' perf buffers -> codec -> sink, every outcome counted.

Forked by the supervisor, one per CPU group. Each record taken from a ring
ends in exactly one ledger counter of this reader's arena block: produced
(then delivered, delivery_failed or shutdown when Kafka answers), or one of
decode_error, encode_error, queue_full. The handler that does this runs as
a ctypes callback, so it is written to never raise.

Crash safety: the ring's read position advances only after the handler
returns, so a reader killed mid-record leaves that record for its
successor. To keep a record that was already counted from being counted
twice, the handler journals each outcome in the arena before counting it
(see _Journal); the supervisor reads the journal when it retires the dead
reader and tells the successor which sequence number to skip.

Signals: SIGINT/SIGTERM are ignored (a Ctrl-C reaches the whole process
group, and a reader must not drain before the supervisor has detached the
programs); the supervisor asks for a stop with SIGUSR1.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog

from . import codec, ledger, rawavro, sink
from .config import Config
from .containers import ContainerResolver
from .errors import DecodeError
from .events import DecodeContext, peek_seq
from .ledger import Arena
from .perfbuf import PerfBuffers, Ring

log = structlog.get_logger("reader")

EXIT_CRASH = 70
EXIT_PRODUCER_FATAL = 75
STOP_SIGNAL = signal.SIGUSR1
_PR_SET_PDEATHSIG = 1


class Reader:
    def __init__(
        self,
        index: int,
        cpus: Sequence[int],
        cfg: Config,
        perf: PerfBuffers,
        arena: Arena,
        host: str,
        boot_id: str,
        *,
        supervisor_pid: int = 0,
        drain_only: bool = False,
        schema_ids: Mapping[str, int] | None = None,
    ) -> None:
        self.index = index
        self.schema_ids = dict(schema_ids or {})  # registered: Confluent framing with these ids
        self.supervisor_pid = supervisor_pid
        self.cpus = tuple(cpus)
        self.cfg = cfg
        self.perf = perf
        self.arena = arena
        self.rings = [r for r in perf.rings if r.cpu in self.cpus]
        pe = cfg.events.process_exec
        self.ctx = DecodeContext(
            host=host,
            boot_id=boot_id,
            max_args=pe.max_args,
            max_arg_len=pe.max_arg_len,
            include_failed=pe.include_failed,
        )
        self.key = host.encode()
        self.containers = ContainerResolver()
        # drain_only: started during shutdown for a reader that was dead, to empty its rings
        self.stopping = drain_only
        self.handled = 0
        self.boot_to_wall_ns = boot_to_wall_ns()
        self._give_up_queue_at = float("inf")

    # -- process entry ---------------------------------------------------------------------------

    def main(self) -> None:
        """Run in the forked child; never returns."""
        code = EXIT_CRASH
        try:
            self._signals()
            code = self.run()
        except BaseException as e:
            log.error("reader_failed", reader=self.index, error=repr(e))
        finally:
            # os._exit: skip atexit (BCC's would detach the supervisor's
            # programs) and librdkafka's destructor (which can hang).
            os._exit(code)

    def _signals(self) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(STOP_SIGNAL, self._on_stop)
        # The supervisor blocked STOP_SIGNAL across the fork, so a stop sent before
        # the handler existed is pending now rather than lost (or fatal).
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {STOP_SIGNAL})
        # If the supervisor dies: drain and flush rather than linger.
        with contextlib.suppress(OSError, AttributeError):
            ct.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(STOP_SIGNAL), 0, 0, 0)
        if self.supervisor_pid and os.getppid() != self.supervisor_pid:  # it died before prctl
            self.stopping = True

    def _on_stop(self, _sig: int, _frame: Any) -> None:
        self.stopping = True

    def run(self) -> int:
        r = self.cfg.readers
        if r.pin:
            try:
                os.sched_setaffinity(0, self.cpus)
            except OSError as e:
                log.warning("reader_pin_failed", reader=self.index, cpus=self.cpus, error=str(e))
        self.sink = sink.Sink(
            self.cfg.kafka,
            f"ebpf-producer-{self.ctx.host}-r{self.index}",
            lambda: time.monotonic() >= self._give_up_queue_at,
        )
        poller = self.perf.map_in_reader(self.rings, self._sample_handler, self._lost_handler)
        log.info("reader_started", reader=self.index, cpus=list(self.cpus), pid=os.getpid())

        latency_s = r.max_latency_ms / 1000.0
        next_drain = time.monotonic() + latency_s
        next_clock = time.monotonic() + 1.0
        while not self.stopping:
            if self.sink.fatal:
                # librdkafka's idempotent producer cannot continue; a fresh one can
                log.error("reader_producer_fatal", reader=self.index, error=self.sink.fatal)
                return EXIT_PRODUCER_FATAL
            poller.poll(r.max_latency_ms)
            now = time.monotonic()
            if now >= next_drain:
                # wakeup_events > 1 leaves a lone record waiting for company;
                # this bounds its wait to max_latency_ms.
                poller.consume()
                next_drain = now + latency_s
            self.sink.poll(0)
            if now >= next_clock:
                self.boot_to_wall_ns = boot_to_wall_ns()
                next_clock = now + 1.0
        return self._shutdown(poller)

    def _shutdown(self, poller: Any) -> int:
        """Drain the rings (the programs are detached by now), flush, purge, close the books."""
        t0 = time.monotonic()
        timeout = self.cfg.shutdown.timeout_s
        self._give_up_queue_at = t0 + timeout * 0.5
        while True:
            before = self.handled
            poller.consume()
            self.sink.poll(0)
            if self.handled == before or time.monotonic() >= self._give_up_queue_at:
                break
        drained = time.monotonic()
        unresolved = self.sink.close(t0 + max(1.0, timeout - 2.0))
        counted = self._close_books()
        log.info(
            "reader_stopped",
            reader=self.index,
            drain_s=round(drained - t0, 3),
            flush_s=round(time.monotonic() - drained, 3),
            unresolved=unresolved,
            counted_shutdown=counted,
        )
        return 0

    def _close_books(self) -> int:
        """Count as shutdown whatever Kafka never answered for (no callback came)."""
        words = self.arena.words
        total = 0
        for ring in self.rings:
            base = self.arena.base(self.index, ring.type_idx, ring.cpu)
            left = ledger.pending(words[base : base + ledger.N_REASONS])
            if left > 0:
                words[base + ledger.SHUTDOWN] += left
                total += left
        return total

    # -- the hot path ----------------------------------------------------------------------------

    def _sample_handler(self, ring: Ring) -> Callable[[Any, int, int], None]:
        a = self.arena
        words = a.words
        base = a.base(self.index, ring.type_idx, ring.cpu)
        journal = _Journal(a, ring.type_idx, ring.cpu)
        suspect_i = a.suspect_index(ring.type_idx, ring.cpu)
        cpu = ring.cpu
        ctx = self.ctx
        schema_id = self.schema_ids.get(ring.event_type)
        encoder = codec.Encoder(
            codec.load_schema(ring.event_type),
            header=None if schema_id is None else codec.confluent_header(schema_id),
        )
        encode = rawavro.encoder_for(ring.event_type, ctx)
        frame = encoder.header
        topic = self.cfg.kafka.topic(ring.event_type)
        # `reader` lets a consumer (and the CPU-group test) see which reader carried a record.
        headers = sink.headers_for(ring.event_type, encoder.content_type, reader=str(self.index))
        key = self.key
        on_delivery = self._delivery_handler(base)
        produce = self.sink.produce
        string_at = ct.string_at
        other_failure = ledger.delivery_slot("other")
        container_of = self.containers.lookup

        def on_sample(_cookie: Any, data: int, size: int) -> None:
            try:
                self.handled += 1
                seq = None
                outcome = ledger.DECODE_ERROR
                try:
                    raw = string_at(data, size)
                    seq = peek_seq(raw)
                    if seq is not None and words[suspect_i] == seq + 1:
                        words[suspect_i] = 0  # counted by the reader before us, which died before moving on
                        return
                    outcome = ledger.ENCODE_ERROR  # the parse inside raises DecodeError for bad bytes
                    body, escaped = encode(raw, cpu, self.boot_to_wall_ns, container_of)
                    outcome = other_failure
                    result = produce(topic, frame + body, key, headers, on_delivery)
                    outcome = ledger.PRODUCED if result is None else result
                    if escaped:
                        words[base + ledger.ESCAPED] += 1
                except DecodeError:
                    outcome = ledger.DECODE_ERROR
                except Exception:
                    pass  # `outcome` names the stage that failed
                journal.count(seq, base + outcome)
            except BaseException:
                words[base + ledger.DECODE_ERROR] += 1  # last resort: counted, never raised into ctypes

        return on_sample

    def _lost_handler(self, ring: Ring) -> Callable[[Any, int], None]:
        words = self.arena.words
        i = self.arena.base(self.index, ring.type_idx, ring.cpu) + ledger.LOST

        def on_lost(_cookie: Any, n: int) -> None:
            words[i] += n

        return on_lost

    def _delivery_handler(self, base: int) -> Callable[[Any, Any], None]:
        words = self.arena.words
        delivered = base + ledger.DELIVERED
        classify = sink.classify

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is None:
                words[delivered] += 1
            else:
                words[base + classify(err)] += 1

        return on_delivery


class _Journal:
    """Counts a record's outcome so that a crash at any instruction leaves an exact ledger.

    Four words per (type, CPU): done (last fully handled seq + 1), and the
    intent (seq + 1, counter index, its value before). Written in the order
    counter/old -> intent -> counter += 1 -> done, so the supervisor can tell
    whether the count of the record in hand happened (see Ledger.retire).
    """

    __slots__ = ("_done", "_intent", "_old", "_slot", "_words")

    def __init__(self, arena: Arena, type_idx: int, cpu: int) -> None:
        self._words = arena.words
        self._done, self._intent, self._slot, self._old = arena.journal_indices(type_idx, cpu)

    def count(self, seq: int | None, counter: int) -> None:
        w = self._words
        if seq is None:  # too short to carry a sequence: it cannot come back as a duplicate we could spot
            w[counter] += 1
            return
        old = w[counter]
        w[self._slot] = counter
        w[self._old] = old
        w[self._intent] = seq + 1
        w[counter] = old + 1
        w[self._done] = seq + 1


def boot_to_wall_ns() -> int:
    """Offset from the boot clock (bpf_ktime_get_boot_ns) to wall-clock time."""
    return time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(time.CLOCK_BOOTTIME)
