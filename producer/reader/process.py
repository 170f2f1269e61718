"""A reader process: its CPUs' perf buffers -> encode -> Kafka, every outcome counted.

Forked by the supervisor, one per CPU group. The per-record work is reader/handler.py's; this is
the process around it: signals, the poll loop, and the shutdown that drains, flushes, purges and
closes the books.

Crash safety: the ring's read position advances only after the handler
returns, so a reader killed mid-record leaves that record for its
successor. To keep a record that was already counted from being counted
twice, the handler journals each outcome in the arena before counting it;
the supervisor reads the journal when it retires the dead reader and tells
the successor which sequence number to skip.

Signals: SIGINT/SIGTERM are ignored (a Ctrl-C reaches the whole process
group, and a reader must not drain before the supervisor has detached the
programs); the supervisor asks for a stop with SIGUSR1. A supervisor that dies
sends the same signal (PR_SET_PDEATHSIG): the reader drains, delivers, closes
its books and writes the kernel's final counts of its CPUs into the arena, so
that the next start can publish the dead run's final report (ledger/recovery.py).

With a spool (spool.enabled) the reader's way to Kafka is reader/spooling.py's.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import os
import select
import signal
import time
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from ..config import Config
from ..k8s.resolver import PodResolver
from ..kafka.framing import Framing, framing
from ..kafka.sink import Sink
from ..kernel.perfbuf import LostHandler, PerfBuffers, Poller, Ring, SampleHandler
from ..kernel.ringbuf import RingPoller, SharedRing
from ..ledger.arena import (
    CLOSED,
    DETACHED,
    KERNEL_FINAL,
    N_REASONS,
    RUN_STATE,
    SHUTDOWN,
    Arena,
    pending,
)
from ..ledger.book import ReadKernel
from ..records import catalog
from ..records.ancestry import Lookup
from ..records.catalog import EventType
from ..records.containers import ContainerResolver
from . import handler
from .handler import ProduceFor, ReaderState
from .outlet import block_produce, open_outlet
from .spooling import SpoolOutlet

log = structlog.get_logger("reader")

EXIT_CRASH = 70
EXIT_PRODUCER_FATAL = 75
STOP_SIGNAL = signal.SIGUSR1
_PR_SET_PDEATHSIG = 1
_DETACH_GRACE_S = 0.05


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
        shared: Sequence[SharedRing] = (),
        procs: Lookup | None = None,
        data_plane: str = "python",
        run_id: str = "",
        read_kernel: ReadKernel | None = None,
    ) -> None:
        """`shared`: the rings of every CPU (kernel/ringbuf.py); reader 0 reads them. `procs`: the
        kernel's process table, when records carry ancestors (records/ancestry.py). `data_plane`:
        the supervisor's choice (producer/native: select)."""
        self.index = index
        self.data_plane = data_plane
        self.run_id = run_id
        self.read_kernel = read_kernel  # the final kernel counts of our CPUs, after the drain
        self.schema_ids = dict(schema_ids or {})  # registered: Confluent framing with these ids
        self.supervisor_pid = supervisor_pid
        self.cpus = tuple(cpus)
        self.cfg = cfg
        self.perf = perf
        self.arena = arena
        self.rings = [r for r in perf.rings if r.cpu in self.cpus]
        self.shared = list(shared) if index == 0 else []
        # every (type index, cpu) this reader counts: its rings', and the shared rings' of every CPU
        self.blocks = [(ring.type_idx, ring.cpu) for ring in self.rings]
        self.blocks += [(ring.type_idx, cpu) for ring in self.shared for cpu in range(arena.cpus)]
        self.ctx = catalog.decode_context(cfg, host, boot_id, procs)
        self.key = host.encode()
        self.host, self.boot_id = host, boot_id
        self.containers = ContainerResolver()
        # made in run(), after the fork: a gRPC channel does not survive one
        self.pods: PodResolver | None = None
        self.outlet: Sink | SpoolOutlet | None = None
        # drain_only: started during shutdown for a reader that was dead, to empty its rings
        self.stopping = drain_only
        self.state = ReaderState(boot_to_wall_ns())
        self._give_up_queue_at = float("inf")
        self._supervisor_fd = -1  # a pidfd of the supervisor (_signals)

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
        if self.supervisor_pid:
            # To know when the supervisor is gone whole: its death signal comes when its main thread
            # exits, while its other threads may still hold the attachment fds (programs attached).
            with contextlib.suppress(OSError):
                self._supervisor_fd = os.pidfd_open(self.supervisor_pid)
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
        if self.cfg.k8s.enabled:
            self.pods = PodResolver(self.cfg.k8s, self.ctx.host)
            self.pods.start()
            # Containers that already run are known after one listing: wait for it (bounded) rather
            # than send their first records, which waited in the rings meanwhile, with k8s null.
            self.pods.ready.wait(self.cfg.k8s.timeout_s)
        if self.data_plane == "native":
            from ..native import plane

            return plane.run(self)
        sink, spooling = self.open_sink()
        poller = self.perf.map_in_reader(self.rings, self.sample_handler, self.lost_handler)
        shared = self.map_shared()
        # Block in the perf rings' poll when there are any, else in a shared ring's (never spin).
        wait = poller.poll if self.rings else shared[0].poll if shared else _sleep_ms
        log.info(
            "reader_started",
            reader=self.index,
            cpus=list(self.cpus),
            pid=os.getpid(),
            spool=bool(spooling),
            data_plane="python",
        )

        latency_s = r.max_latency_ms / 1000.0
        next_drain = time.monotonic() + latency_s
        next_clock = time.monotonic() + 1.0
        busy = False  # replay work waiting: the loop does not block in the perf poll
        while not self.stopping:
            if sink.fatal:
                # librdkafka's idempotent producer cannot continue; a fresh one can
                log.error("reader_producer_fatal", reader=self.index, error=sink.fatal)
                return EXIT_PRODUCER_FATAL
            wait(0 if busy else r.max_latency_ms)
            for ring in shared:
                ring.consume()
            now = time.monotonic()
            if now >= next_drain:
                # wakeup_events > 1 leaves a lone record waiting for company;
                # this bounds its wait to max_latency_ms.
                poller.consume()
                next_drain = now + latency_s
            sink.poll(0)
            if spooling is not None:
                busy = spooling.tick(now)
            if now >= next_clock:
                self.state.boot_to_wall_ns = boot_to_wall_ns()
                next_clock = now + 1.0
        return self._shutdown(poller, shared, sink, spooling)

    def open_sink(self, name: str = "") -> tuple[Sink, SpoolOutlet | None]:
        """The reader's producer, and its way to Kafka (self.outlet): the spool over it, when there is one.
        `name`: a suffix of its client id (the native plane's second producer, for the shared rings)."""
        sink = Sink(
            self.cfg.kafka,
            f"ebpf-producer-{self.ctx.host}-r{self.index}{name}",
            lambda: time.monotonic() >= self._give_up_queue_at,
            spool=self.cfg.spool.enabled,
        )
        outlet = self.outlet = open_outlet(
            self.cfg,
            sink,
            self.arena,
            reader=self.index,
            run_id=self.run_id,
            host=self.host,
            boot_id=self.boot_id,
            blocks=self.blocks,
        )
        return sink, outlet if isinstance(outlet, SpoolOutlet) else None

    def map_shared(self) -> list[RingPoller]:
        """The shared rings this reader reads (reader 0: all of them), each with the Python handler."""
        return [RingPoller(ring, self.shared_handler(ring)) for ring in self.shared]

    def give_up_queue_at(self, monotonic_s: float) -> None:
        """From then on a full producer queue costs a record no wait (the shutdown's budget)."""
        self._give_up_queue_at = monotonic_s

    def _shutdown(
        self, poller: Poller, shared: Sequence[RingPoller], sink: Sink, spooling: SpoolOutlet | None
    ) -> int:
        """Drain the rings (the programs are detached by now), flush, purge, close the books."""
        t0 = time.monotonic()
        timeout = self.cfg.shutdown.timeout_s
        self.give_up_queue_at(t0 + timeout * 0.5)
        self.await_detach()
        while True:
            before = self.state.handled
            poller.consume()
            for ring in shared:
                ring.consume()
            sink.poll(0)
            if self.state.handled == before or time.monotonic() >= self._give_up_queue_at:
                break
        drained = time.monotonic()
        if self.pods is not None:
            self.pods.stop()
        flush_until = t0 + max(1.0, timeout - 2.0)
        unresolved = sink.close(flush_until) if spooling is None else spooling.close(flush_until)
        return self.stopped(t0, drained, unresolved)

    def stopped(self, t0: float, drained: float, unresolved: int, **extra: Any) -> int:
        """After the flush (either data plane): close the books, say how the stop went; the exit code."""
        counted = self._close_books()
        self._final_kernel()
        self.arena.words[self.arena.reader_word(self.index, CLOSED)] = 1
        log.info(
            "reader_stopped",
            reader=self.index,
            drain_s=round(drained - t0, 3),
            flush_s=round(time.monotonic() - drained, 3),
            unresolved=unresolved,
            counted_shutdown=counted,
            **extra,
        )
        return 0

    def await_detach(self) -> None:
        """Before the final drain (either data plane): when the supervisor died instead of detaching the
        programs, wait until they are detached."""
        if self.arena.words[self.arena.run_word(RUN_STATE)] != DETACHED:
            self._await_detach(self.cfg.shutdown.timeout_s * 0.25)

    def _await_detach(self, wait_s: float) -> None:
        """The supervisor died (it did not detach the programs and then ask us to stop): the programs
        are detached once its last thread has closed their fds. Its death signal comes when its main
        thread exits, and getppid() still names it while other threads live; its pidfd turns readable
        when the whole process has exited. Drained before that, the rings would go on filling after
        the drain, and the final kernel counts would not be final."""
        fd = self._supervisor_fd
        if fd >= 0:
            with contextlib.suppress(OSError, ValueError):
                select.select([fd], [], [], wait_s)
        time.sleep(_DETACH_GRACE_S)  # a program already running on another CPU finishes its record

    def _final_kernel(self) -> None:
        """The kernel's counts of our CPUs, read after our drain: the programs are detached by now (the
        supervisor does it first, or its death did), so they are final. Kept in the arena for a
        supervisor that is no longer there to read them (ledger/recovery.py)."""
        if self.read_kernel is None:
            return
        try:
            kernel = self.read_kernel()
        except Exception as e:
            log.warning("reader_kernel_read_failed", reader=self.index, error=repr(e))
            return
        for type_idx, cpu in self.blocks:
            k = kernel.get((type_idx, cpu))
            if k is not None:
                self.arena.store_kernel(type_idx, cpu, (k.seen, k.submit_failed, k.filtered, k.untracked))
        self.arena.words[self.arena.reader_word(self.index, KERNEL_FINAL)] = 1

    def _close_books(self) -> int:
        """Count as shutdown whatever Kafka never answered for (no callback came)."""
        words = self.arena.words
        total = 0
        for type_idx, cpu in self.blocks:
            base = self.arena.base(self.index, type_idx, cpu)
            left = pending(words[base : base + N_REASONS])
            if left > 0:
                words[base + SHUTDOWN] += left
                total += left
        return total

    # -- the handlers libbcc calls ---------------------------------------------------------------

    def sample_handler(self, ring: Ring) -> SampleHandler:
        event = catalog.BY_NAME[ring.event_type]
        frame = self._framing(event)
        return handler.sample_handler(
            event,
            reader=self.index,
            cpu=ring.cpu,
            type_idx=ring.type_idx,
            arena=self.arena,
            state=self.state,
            ctx=self.ctx,
            prefix=frame.prefix,
            produce=self._produce_for(event, ring.type_idx, ring.cpu, frame)(self.key),
            container_of=self.containers.lookup,
            pods=self.pods,
        )

    def shared_handler(self, ring: SharedRing) -> SampleHandler:
        event = catalog.BY_NAME[ring.event_type]
        frame = self._framing(event)
        return handler.shared_sample_handler(
            event,
            reader=self.index,
            type_idx=ring.type_idx,
            arena=self.arena,
            state=self.state,
            ctx=self.ctx,
            prefix=frame.prefix,
            produce_for=[
                self._produce_for(event, ring.type_idx, cpu, frame) for cpu in range(self.arena.cpus)
            ],
            key=self.key,
            container_of=self.containers.lookup,
            pods=self.pods,
        )

    def _framing(self, event: EventType) -> Framing:
        # `reader` lets a consumer (and the CPU-group test) see which reader carried a record; `run_id`
        # tells runs apart, whose (cpu, seq) start again from 0, e.g. a spool replayed after a restart.
        return framing(event.schema, self.schema_ids, reader=str(self.index), run_id=self.run_id)

    def _produce_for(self, event: EventType, type_idx: int, cpu: int, frame: Framing) -> ProduceFor:
        assert self.outlet is not None
        return block_produce(
            self.outlet,
            self.arena,
            reader=self.index,
            event=event,
            type_idx=type_idx,
            cpu=cpu,
            topic=self.cfg.kafka.topic(event.name),
            frame=frame,
        )

    def lost_handler(self, ring: Ring) -> LostHandler:
        return handler.lost_handler(self.arena, self.index, ring.type_idx, ring.cpu)


def _sleep_ms(ms: int) -> None:
    time.sleep(ms / 1000.0)


def boot_to_wall_ns() -> int:
    """Offset from the boot clock (bpf_ktime_get_boot_ns) to wall-clock time."""
    return time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(time.CLOCK_BOOTTIME)
