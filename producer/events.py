"""The user-space mirror of bpf/events.h, and the decoder of raw perf records.

Each event is defined once per side: the C struct in bpf/events.h, its mirror
here, and its Avro schema in schemas/. They are tied together by checks, not
by hope:

- the loader compares every field's offset and size below with the layout the
  compiler gave the C struct (BCC exposes it through the ekp_layout_* maps),
  at every start, and refuses to attach on any difference;
- tests compare the decoder's output with schemas/<event_type>.avsc, field by
  field and type by type.

Decoding is the first thing done to bytes from the kernel and trusts none of
them: every length, count, flag and range is checked, and anything wrong
raises DecodeError, which the reader counts as decode_error.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import DecodeError

EVENT_TYPE_IDS = {"process_exec": 0}

# Largest values the kernel can produce for these fields; anything above is
# corruption, not data.
PID_MAX_LIMIT = 4_194_304  # include/linux/threads.h
INT64_MAX = 2**63 - 1

EXEC_ARGV_TRUNCATED = 1 << 0
EXEC_ARG_TRUNCATED = 1 << 1
EXEC_FILENAME_TRUNCATED = 1 << 2
EXEC_ARGV_MISSING = 1 << 3
EXEC_PPID_UNKNOWN = 1 << 4
EXEC_FLAGS_ALL = 0x1F


@dataclass(frozen=True)
class RecordLayout:
    """A C record as a struct format: fixed fields in order, then a variable tail."""

    c_struct: str
    fields: tuple[tuple[str, str], ...]  # (C field path, struct format)
    tail: str | None = None  # name of the trailing char[] sent only in part

    @property
    def struct(self) -> struct.Struct:
        return struct.Struct("<" + "".join(fmt for _, fmt in self.fields))

    def offsets(self) -> dict[str, tuple[int, int]]:
        """C field path -> (offset, size), as this mirror believes them to be."""
        out: dict[str, tuple[int, int]] = {}
        fmt = "<"
        for name, f in self.fields:
            out[name] = (struct.calcsize(fmt), struct.calcsize("<" + f))
            fmt += f
        if self.tail is not None:
            out[self.tail] = (struct.calcsize(fmt), -1)  # size depends on cflags
        return out


HEADER = RecordLayout(
    c_struct="ekp_header",
    fields=(("hdr.boot_ns", "Q"), ("hdr.seq", "Q"), ("hdr.type", "I"), ("hdr.cpu", "I")),
)

COUNTERS = RecordLayout(
    c_struct="ekp_counters",
    fields=(("seen", "Q"), ("submit_failed", "Q"), ("filtered", "Q")),
)

PROCESS_EXEC = RecordLayout(
    c_struct="ekp_process_exec",
    fields=(
        *HEADER.fields,
        ("cgroup_id", "Q"),
        ("pid", "I"),
        ("ppid", "I"),
        ("uid", "I"),
        ("gid", "I"),
        ("retval", "i"),
        ("flags", "I"),
        ("args_count", "H"),
        ("args_size", "H"),
        ("comm", "16s"),
        ("filename", "256s"),
    ),
    tail="args",
)

LAYOUTS = {"process_exec": PROCESS_EXEC}
LAYOUT_MAPS = {"ekp_layout_process_exec": PROCESS_EXEC, "ekp_layout_counters": COUNTERS}


@dataclass(frozen=True)
class DecodeContext:
    """What the decoder needs besides the bytes; fixed for a reader's life except the clock."""

    host: str
    boot_id: str
    max_args: int
    max_arg_len: int
    include_failed: bool


def _text(raw: bytes, field: str) -> tuple[str, bool]:
    """NUL-terminated kernel bytes -> (str, escaped?).

    Linux paths and arguments are bytes, not UTF-8. Dropping an exec because
    its name is not valid UTF-8 would let anyone hide a program from the
    stream by naming it so; instead invalid bytes are kept as \\xNN escapes and
    the record says so (strings_escaped).
    """
    end = raw.find(b"\0")
    if end < 0:
        raise DecodeError(f"{field}: not NUL-terminated")
    b = raw[:end]
    try:
        return b.decode("utf-8"), False
    except UnicodeDecodeError:
        return b.decode("utf-8", "backslashreplace"), True


def decode_process_exec(raw: bytes, cpu: int, ctx: DecodeContext, boot_to_wall_ns: int) -> dict[str, Any]:
    """One raw process_exec record from CPU `cpu`'s perf buffer -> an Avro-ready dict.

    Raises DecodeError for any malformed input; never anything else for any bytes.
    """
    fixed = _EXEC_STRUCT.size
    if len(raw) < fixed:
        raise DecodeError(f"truncated: {len(raw)} bytes, the fixed part alone is {fixed}")
    (
        boot_ns,
        seq,
        typ,
        hdr_cpu,
        cgroup_id,
        pid,
        ppid,
        uid,
        gid,
        retval,
        flags,
        args_count,
        args_size,
        comm_b,
        filename_b,
    ) = _EXEC_STRUCT.unpack_from(raw)
    if typ != _EXEC_TYPE:
        raise DecodeError(f"type {typ} in the process_exec buffer")
    if hdr_cpu != cpu:
        raise DecodeError(f"record says cpu {hdr_cpu}, read from cpu {cpu}'s buffer")
    if flags & ~EXEC_FLAGS_ALL:
        raise DecodeError(f"unknown flags {flags:#x}")
    if boot_ns > INT64_MAX or seq > INT64_MAX or cgroup_id > INT64_MAX:
        raise DecodeError("a 64-bit field is beyond the Avro long range")
    if not 0 < pid <= PID_MAX_LIMIT or ppid > PID_MAX_LIMIT:
        raise DecodeError(f"pid {pid} / ppid {ppid} out of range")
    if retval > 0 or (retval < 0 and not ctx.include_failed):
        raise DecodeError(f"retval {retval} for a filter that passes only successful execs")
    if args_count > ctx.max_args or args_size > ctx.max_args * ctx.max_arg_len:
        raise DecodeError(f"args_count {args_count} / args_size {args_size} beyond the configured bounds")
    if fixed + args_size > len(raw):
        raise DecodeError(f"args_size {args_size} runs past the record ({len(raw)} bytes)")

    argv: list[str] = []
    escaped = False
    if args_size:
        blob = raw[fixed : fixed + args_size]
        if blob[-1] != 0:
            raise DecodeError("argv: last string not NUL-terminated")
        parts = blob[:-1].split(b"\0")
        if len(parts) != args_count:
            raise DecodeError(f"argv: {len(parts)} strings, header says {args_count}")
        for p in parts:
            if len(p) >= ctx.max_arg_len:
                raise DecodeError(f"argv: a string of {len(p)} bytes, limit {ctx.max_arg_len - 1}")
            try:
                argv.append(p.decode("utf-8"))
            except UnicodeDecodeError:
                argv.append(p.decode("utf-8", "backslashreplace"))
                escaped = True
    elif args_count:
        raise DecodeError(f"argv: args_count {args_count} with no bytes")

    comm, e1 = _text(comm_b, "comm")
    filename, e2 = _text(filename_b, "filename")
    return {
        "timestamp": (boot_ns + boot_to_wall_ns) // 1000,
        "boot_ns": boot_ns,
        "host": ctx.host,
        "boot_id": ctx.boot_id,
        "cpu": cpu,
        "seq": seq,
        "pid": pid,
        "ppid": None if flags & EXEC_PPID_UNKNOWN else ppid,
        "uid": uid,
        "gid": gid,
        "comm": comm,
        "filename": filename,
        "argv": argv,
        "argv_truncated": bool(flags & (EXEC_ARGV_TRUNCATED | EXEC_ARG_TRUNCATED)),
        "filename_truncated": bool(flags & EXEC_FILENAME_TRUNCATED),
        "argv_missing": bool(flags & EXEC_ARGV_MISSING),
        "strings_escaped": escaped or e1 or e2,
        "retval": retval,
        "cgroup_id": cgroup_id,
    }


_EXEC_STRUCT = PROCESS_EXEC.struct
_EXEC_TYPE = EVENT_TYPE_IDS["process_exec"]

Decoder = Callable[[bytes, int, DecodeContext, int], dict[str, Any]]
DECODERS: dict[str, Decoder] = {"process_exec": decode_process_exec}


def peek_seq(raw: bytes) -> int | None:
    """The header's sequence number, if the record is long enough to hold one."""
    if len(raw) < HEADER.struct.size:
        return None
    return int(_SEQ.unpack_from(raw, 8)[0])


_SEQ = struct.Struct("<Q")
