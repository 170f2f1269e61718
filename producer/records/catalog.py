"""The event catalog: one entry per event type, and every per-type table derived from it.

An entry says what the type is (name, id, kind), where the kernel produces it (tracepoints, record
layout) and how user space handles it: its family module's parser, reference decoder, fast Avro
encoder, `tail --format brief` line, and the hooks the loader and the readers need (extra -D flags,
decode options) from the type's config section. Nothing else in the package lists event types:
ids, stream types, layout maps, decoders, encoders, tracepoints and brief formats are all read
from CATALOG, and so are the tests' record builders.

Adding an event type: its family module under records/ (or a new one), one entry below, the C
(a struct and an EKP_EVENT_* id in bpf/events.h, the program in bpf/collector.bpf.c) and
schemas/<type>.avsc with schemas/released/<type>/v1.avsc. docs/design.md says exactly what else.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import file_open, process, process_exec, processes, tcp
from .abi import COUNTERS, PROC, RecordLayout
from .ancestry import Lookup
from .avro import Encoder, EncoderFactory, PodSource, Static
from .common import DecodeContext

Parser = Callable[[bytes, int, int, Any], tuple[Any, ...]]  # (raw, cpu, type id, options) -> typed result
Decoder = Callable[[bytes, int, int, DecodeContext, int], dict[str, Any]]  # (raw, cpu, id, ctx, offset)
Brief = Callable[[dict[str, Any]], str]
Hook = Callable[[Any], Any]  # config section -> cflags / options


class Kind(enum.Enum):
    STREAM = "stream"  # records through per-CPU perf buffers, read by the readers
    AGGREGATE = "aggregate"  # counts kept in a BPF map, read and published by the supervisor


class Buffer(enum.Enum):
    PERF = "perf"  # a perf buffer per CPU, each read by the reader of its CPU group
    SHARED = "shared"  # one BPF ring buffer for all CPUs, read by reader 0: one order for every CPU


@dataclass(frozen=True, kw_only=True)
class EventType:
    name: str  # also its topic suffix, schema file and config section
    id: int  # EKP_EVENT_<NAME>: the record header's `type` and the row of ekp_counters
    kind: Kind
    doc: str  # what one record is: its config section's description
    tracepoints: tuple[str, ...]  # what its programs attach to, besides the always-on ones
    layout: RecordLayout | None = None
    parse: Parser | None = None
    decoder: Decoder | None = None
    encoder: EncoderFactory | None = None
    brief: Brief | None = None  # None: tail prints the JSON line
    cflags: Callable[[Any], list[str]] | None = None
    options: Hook | None = None  # its decode options (DecodeContext.option)
    seeds: tuple[str, ...] = ()  # maps the loader fills from /proc before attaching (kernel/seed.py)
    buffer: Buffer = Buffer.PERF
    # The message key of a raw record (raw, boot) -> bytes; None: every message is keyed by the host.
    key: Callable[[bytes, str], bytes | None] | None = None
    compacted: bool = False  # its topic keeps the latest message per key (cleanup.policy=compact)

    def __post_init__(self) -> None:
        stream = (self.layout, self.parse, self.decoder, self.encoder)
        if self.kind is Kind.STREAM and None in stream:
            raise TypeError(f"{self.name}: a stream needs a layout, a parser, a decoder and an encoder")
        if self.kind is Kind.AGGREGATE and any(x is not None for x in stream):
            raise TypeError(f"{self.name}: an aggregate has no record layout or record codecs")

    @property
    def schema(self) -> str:
        return self.name

    @property
    def perf_table(self) -> str:
        return f"ekp_events_{self.name}"

    def section(self, cfg: Any) -> Any:
        """Its section of the config (events.<name>): the one place that reads it by name."""
        return getattr(cfg.events, self.name)

    def enabled(self, cfg: Any) -> bool:
        return bool(self.section(cfg).enabled)

    def decode(self, raw: bytes, cpu: int, ctx: DecodeContext, boot_to_wall_ns: int) -> dict[str, Any]:
        """The reference decoder: a raw record -> the dict fastavro encodes. Raises DecodeError."""
        assert self.decoder is not None, self.name
        return self.decoder(raw, cpu, self.id, ctx, boot_to_wall_ns)

    def fast_encoder(self, ctx: DecodeContext, prefix: bytes = b"", pods: PodSource | None = None) -> Encoder:
        """A raw record -> `prefix` + its Avro body, the body byte for byte what fastavro makes of
        `decode` (with `k8s` as `pods` has it). One per ring: it keeps a memo of the processes and
        containers it has encoded."""
        assert self.encoder is not None, self.name
        return self.encoder(Static(ctx, prefix, pods), self.id)


def _tcp(name: str, id: int, doc: str, decoder: Decoder, encoder: EncoderFactory, brief: Brief) -> EventType:
    """The tcp family's types: one layout and parser, one tracepoint, the listeners seeded from /proc."""
    return EventType(
        name=name,
        id=id,
        kind=Kind.STREAM,
        doc=doc,
        tracepoints=("sock/inet_sock_set_state",),
        layout=tcp.TCP,
        parse=tcp.parse,
        decoder=decoder,
        encoder=encoder,
        brief=brief,
        seeds=("listeners",),
    )


CATALOG = (
    EventType(
        name="process_exec",
        id=0,
        kind=Kind.STREAM,
        doc="a program started",
        tracepoints=(
            "syscalls/sys_enter_execve",
            "syscalls/sys_exit_execve",
            "syscalls/sys_enter_execveat",
            "syscalls/sys_exit_execveat",
        ),
        layout=process_exec.EXEC,
        parse=process_exec.parse_exec,
        decoder=process_exec.decode_exec,
        encoder=process_exec.exec_encoder,
        brief=process_exec.brief_exec,
        cflags=process_exec.exec_cflags,
        options=process_exec.exec_options,
    ),
    EventType(
        name="process_exit",
        id=1,
        kind=Kind.STREAM,
        doc="a process ended",
        tracepoints=(
            "syscalls/sys_enter_exit_group",
            "syscalls/sys_enter_exit",
            "signal/signal_generate",
            "signal/signal_deliver",
        ),
        layout=process.EXIT,
        parse=process.parse_exit,
        decoder=process.decode_exit,
        encoder=process.exit_encoder,
        brief=process.brief_exit,
    ),
    EventType(
        name="process_fork",
        id=2,
        kind=Kind.STREAM,
        doc="a process forked",
        tracepoints=(),  # sched_process_fork is always attached (it feeds every record's ppid)
        layout=process.FORK,
        parse=process.parse_fork,
        decoder=process.decode_fork,
        encoder=process.fork_encoder,
        brief=process.brief_fork,
    ),
    EventType(
        name="file_open",
        id=3,
        kind=Kind.STREAM,
        doc="a file was opened",
        tracepoints=(
            "syscalls/sys_enter_openat",
            "syscalls/sys_exit_openat",
            "syscalls/sys_enter_openat2",
            "syscalls/sys_exit_openat2",
        ),
        layout=file_open.FILE_OPEN,
        parse=file_open.parse,
        decoder=file_open.decode,
        encoder=file_open.encoder,
        brief=file_open.brief,
        cflags=file_open.cflags,
    ),
    _tcp("tcp_connect", 4, "an outbound TCP connection", tcp.decode, tcp.encoder, tcp.brief_connect),
    _tcp("tcp_accept", 5, "an inbound TCP connection", tcp.decode, tcp.encoder, tcp.brief_accept),
    _tcp("tcp_close", 6, "a TCP connection closed", tcp.decode_close, tcp.close_encoder, tcp.brief_close),
    # records/syscall_counts.py reads its map; producer/ledger/aggregate.py publishes it
    EventType(
        name="syscall_counts",
        id=7,
        kind=Kind.AGGREGATE,
        doc="syscalls counted per cgroup and interval",
        tracepoints=("raw_syscalls/sys_enter",),
    ),
    EventType(
        name="processes",
        id=8,
        kind=Kind.STREAM,
        doc="the process table: an entry per exec, fork and exit, and the processes alive at start",
        tracepoints=(  # exec and exit: fork is always attached
            "syscalls/sys_enter_execve",
            "syscalls/sys_exit_execve",
            "syscalls/sys_enter_execveat",
            "syscalls/sys_exit_execveat",
            "syscalls/sys_enter_exit_group",
            "syscalls/sys_enter_exit",
            "signal/signal_generate",
            "signal/signal_deliver",
        ),
        # its records are exec, fork and exit records (processes.py); EXEC the largest
        layout=process_exec.EXEC,
        parse=processes.parse,
        decoder=processes.decode,
        encoder=processes.encoder,
        brief=processes.brief,
        cflags=processes.cflags,
        seeds=("processes",),
        buffer=Buffer.SHARED,
        key=processes.key,
        compacted=True,
    ),
)

# Attached whatever is enabled: they keep the process table (identity, parents, programs) of every
# record, and tell threads from processes.
BASE_TRACEPOINTS = (
    "sched/sched_process_fork",
    "sched/sched_process_exit",
    "syscalls/sys_enter_execve",
    "syscalls/sys_exit_execve",
    "syscalls/sys_enter_execveat",
    "syscalls/sys_exit_execveat",
    "syscalls/sys_enter_clone",
    "syscalls/sys_exit_clone",
    "syscalls/sys_enter_clone3",
    "syscalls/sys_exit_clone3",
)

if [e.id for e in CATALOG] != list(range(len(CATALOG))):  # they index ekp_counters (EKP_EVENT_TYPES rows)
    raise AssertionError("event type ids must be 0, 1, 2, ... in catalog order")

# -- the tables, derived ---------------------------------------------------------------------------

BY_NAME = {e.name: e for e in CATALOG}
EVENT_TYPE_IDS = {e.name: e.id for e in CATALOG}
STREAMS = tuple(e for e in CATALOG if e.kind is Kind.STREAM)
STREAM_TYPES = tuple(e.name for e in STREAMS)
LAYOUTS = {e.name: e.layout for e in STREAMS if e.layout is not None}
# The BPF map whose value type is each mirrored struct (bpf/*): what the loader checks at start.
LAYOUT_MAPS = {
    layout.map_name: layout
    for layout in (*dict.fromkeys(LAYOUTS.values()), process.EXIT, process.FORK, COUNTERS, PROC)
}
DECODERS = {e.name: e.decode for e in STREAMS}
TRACEPOINTS = {e.name: e.tracepoints for e in CATALOG}
BRIEF = {e.name: e.brief for e in CATALOG if e.brief is not None}


def enabled(cfg: Any) -> tuple[EventType, ...]:
    """Every enabled event type, aggregates included: each has a topic, a schema and a subject."""
    return tuple(e for e in CATALOG if e.enabled(cfg))


def enabled_streams(cfg: Any) -> tuple[EventType, ...]:
    """The enabled stream types, in catalog order: the order of perf buffers and ledger rows."""
    return tuple(e for e in STREAMS if e.enabled(cfg))


def decode_context(cfg: Any, host: str, boot_id: str, procs: Lookup | None = None) -> DecodeContext:
    """`procs`: the kernel's process table, for inline ancestors (records/ancestry.py)."""
    options = {e.name: e.options(e.section(cfg)) for e in CATALOG if e.options is not None}
    return DecodeContext(host=host, boot_id=boot_id, options=options, procs=procs)


def cflags(cfg: Any) -> list[str]:
    """The -D flags of the event types: which are compiled in, and what their config sections ask for."""
    out = [f"-DEKP_ENABLE_{e.name.upper()}={int(e.enabled(cfg))}" for e in CATALOG]
    for e in CATALOG:
        if e.cflags is not None:
            out += e.cflags(e.section(cfg))
    return out
