"""The user-space mirror of bpf/events.h: what every record shares, and the filters' limits.

Each `#define EKP_<NAME>` of events.h has a twin here named <NAME>, or in the module of the one event
family that uses it (records/process.py, process_exec.py, file_open.py, tcp.py); the event type ids
are the catalog's (records/catalog.py). The few that have no Python side are listed in C_ONLY,
with the reason.
tests/unit/test_abi.py compiles events.h with gcc and compares every value, so a constant changed on
one side only fails the tests; the struct layouts are compared with the compiler's at every start
(producer/kernel/build.py: check_layouts).

A RecordLayout is a C struct as a `struct` format. Parsers never write their own formats or offsets:
they use the ones derived here (`own`, `offset`), so the start-up layout check covers every byte they
read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from struct import Struct, calcsize
from typing import Any

# Largest values the kernel can produce for these fields; anything above is corruption, not data.
PID_MAX_LIMIT = 4_194_304  # include/linux/threads.h
INT64_MAX = 2**63 - 1

PATH_LEN = 256
COMM_LEN = 16

# ekp_task.flags
TASK_PPID_UNKNOWN = 1 << 0
TASK_OWNER_UNKNOWN = 1 << 1
TASK_PROC_UNKNOWN = 1 << 2  # not in the process table (it was full): no identity
TASK_PARENT_UNKNOWN = 1 << 3  # no parent identity
TASK_FLAGS_ALL = 0xF

# A processes record is an exec, fork or exit record submitted again: its header's type is
# EVENT_PROCESSES | (the source type << VIEW_SHIFT) (records/processes.py).
VIEW_SHIFT = 8

# ekp_proc.flags: the process table (bpf/collector.bpf.c ekp_procs), seeded by kernel/seed.py
PROC_SEEDED = 1 << 0
PROC_PARENT_UNKNOWN = 1 << 1
PROC_PPID_UNKNOWN = 1 << 2

# Filters: the mark of a value in a filter map, the allow-list bits of ekp_filter_config.flags, and the
# sizes of the maps (the config's limits: producer/config.py refuses longer lists).
FILTER_ALLOW = 1
FILTER_DENY = 2
FILTER_COMM_ALLOW = 1 << 0
FILTER_UID_ALLOW = 1 << 1
FILTER_PID_ALLOW = 1 << 2
FILTER_CGROUP_ALLOW = 1 << 3
FILTER_PATH_ALLOW = 1 << 4
PREFIX_LEN = 64  # a path prefix is at most PREFIX_LEN - 1 bytes
PREFIXES = 8  # distinct prefix lengths
FILTER_COMM_MAX = 256
FILTER_UID_MAX = 256
FILTER_PID_MAX = 1024
FILTER_CGROUP_MAX = 256
FILTER_PREFIX_MAX = 64

# The defines of events.h without a Python twin, and why.
C_ONLY = {
    "EKP_EVENTS_H": "the include guard",
    "EKP_MAX_ARGS": "a -D parameter (events.process_exec.max_args)",
    "EKP_MAX_ARG_LEN": "a -D parameter (events.process_exec.max_arg_len)",
    "EKP_ARGS_BUF": "EKP_MAX_ARGS * EKP_MAX_ARG_LEN: follows the parameters",
}


@dataclass(frozen=True)
class RecordLayout:
    """A C record as a struct format: fixed fields in order, then an optional variable tail."""

    c_struct: str
    fields: tuple[tuple[str, str], ...]  # (C field path, struct format)
    tail: str | None = None  # name of the trailing char[] sent only in part

    @property
    def struct(self) -> Struct:
        return Struct("<" + "".join(fmt for _, fmt in self.fields))

    @property
    def own(self) -> Struct:
        """The fields after the common header and task: what a family's parser unpacks at COMMON_SIZE."""
        n = len(COMMON_FIELDS)
        if self.fields[:n] != COMMON_FIELDS:
            raise ValueError(f"{self.c_struct} does not start with the common header and task")
        return Struct("<" + "".join(fmt for _, fmt in self.fields[n:]))

    @property
    def map_name(self) -> str:
        """The BPF map whose value type is this struct (declared for the layout check alone)."""
        return "ekp_layout_" + self.c_struct.removeprefix("ekp_")

    def offsets(self) -> dict[str, tuple[int, int]]:
        """C field path -> (offset, size), as this mirror believes them to be."""
        out: dict[str, tuple[int, int]] = {}
        fmt = "<"
        for name, f in self.fields:
            out[name] = (calcsize(fmt), calcsize("<" + f))
            fmt += f
        if self.tail is not None:
            out[self.tail] = (calcsize(fmt), -1)  # size depends on cflags
        return out

    def offset(self, name: str) -> int:
        return self.offsets()[name][0]

    def pack(self, values: Mapping[str, Any]) -> bytes:
        """The fixed part of a record as the C lays it out; unnamed fields are zero (tests, benchmarks)."""
        unknown = set(values) - {name for name, _ in self.fields}
        if unknown:
            raise KeyError(f"{self.c_struct} has no field {sorted(unknown)}")
        return self.struct.pack(*(values.get(name, b"" if f.endswith("s") else 0) for name, f in self.fields))


HEADER = (("hdr.boot_ns", "Q"), ("hdr.seq", "Q"), ("hdr.type", "I"), ("hdr.cpu", "I"))
TASK = (
    ("task.cgroup_id", "Q"),
    ("task.start_ns", "Q"),
    ("task.parent_start_ns", "Q"),
    ("task.pid", "I"),
    ("task.tid", "I"),
    ("task.ppid", "I"),
    ("task.uid", "I"),
    ("task.gid", "I"),
    ("task.flags", "I"),
    ("task.comm", f"{COMM_LEN}s"),
)
COMMON_FIELDS = (*HEADER, *TASK)
COMMON = RecordLayout("ekp_common", COMMON_FIELDS)  # not a C struct: the two every record begins with
COMMON_SIZE = COMMON.struct.size
SEQ = Struct("<Q")
# The task's bytes: what a process's records share (the memos in records/common.py and avro.py key on them)
TASK_BYTES = slice(COMMON.offset("task.cgroup_id"), COMMON_SIZE)
HEAD = Struct("<" + "".join(f for _, f in HEADER))  # the header alone: boot_ns, seq, type, cpu
SEQ_OFFSET = COMMON.offset("hdr.seq")
SEQ_END = SEQ_OFFSET + SEQ.size

COUNTERS = RecordLayout(
    "ekp_counters", (("seen", "Q"), ("submit_failed", "Q"), ("filtered", "Q"), ("untracked", "Q"))
)
# The process table's entries (not a record): seeded from /proc by kernel/seed.py.
PROC = RecordLayout(
    "ekp_proc",
    (
        ("start_ns", "Q"),
        ("parent_start_ns", "Q"),
        ("fork_ns", "Q"),
        ("ppid", "I"),
        ("flags", "I"),
        ("comm", f"{COMM_LEN}s"),
        ("filename", f"{PATH_LEN}s"),
    ),
)


def event_layout(c_struct: str, *own: tuple[str, str], tail: str | None = None) -> RecordLayout:
    """A record: the common header and task, then its own fields."""
    return RecordLayout(c_struct, (*COMMON_FIELDS, *own), tail)


def peek_seq(raw: bytes) -> int | None:
    """The header's sequence number, if the record is long enough to hold one."""
    if len(raw) < SEQ_END:
        return None
    return int(SEQ.unpack_from(raw, SEQ_OFFSET)[0])
