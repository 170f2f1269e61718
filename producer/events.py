"""The user-space mirror of bpf/events.h, and the decoders of raw perf records.

Each event is defined once per side: the C struct in bpf/events.h, its mirror
here, and its Avro schema in schemas/. They are tied together by checks, not
by hope:

- the loader compares every field's offset and size below with the layout the
  compiler gave the C struct (BCC exposes it through the ekp_layout_* maps),
  at every start, and refuses to attach on any difference;
- tests compare each decoder's output with schemas/<event_type>.avsc, field by
  field and type by type, at the boundary values, and check that every event
  type has a layout, a decoder, a schema and a BPF program.

Decoding is the first thing done to bytes from the kernel and trusts none of
them: every length, count, flag and range is checked, and anything wrong
raises DecodeError, which the reader counts as decode_error.
"""

from __future__ import annotations

import errno as errno_mod
import ipaddress
import os
import signal
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import DecodeError

# Kernel event type ids (EKP_EVENT_* in bpf/events.h).
EVENT_TYPE_IDS = {
    "process_exec": 0,
    "process_exit": 1,
    "process_fork": 2,
    "file_open": 3,
    "tcp_connect": 4,
    "tcp_accept": 5,
    "tcp_close": 6,
    "syscall_counts": 7,
}
# Event types carried by perf buffers (syscall_counts is an aggregate read from a map).
STREAM_TYPES = tuple(t for t in EVENT_TYPE_IDS if t != "syscall_counts")

# Largest values the kernel can produce for these fields; anything above is
# corruption, not data.
PID_MAX_LIMIT = 4_194_304  # include/linux/threads.h
INT64_MAX = 2**63 - 1

TASK_PPID_UNKNOWN = 1 << 0
TASK_OWNER_UNKNOWN = 1 << 1
TASK_FLAGS_ALL = 0x3

EXEC_ARGV_TRUNCATED = 1 << 0
EXEC_ARG_TRUNCATED = 1 << 1
EXEC_FILENAME_TRUNCATED = 1 << 2
EXEC_ARGV_MISSING = 1 << 3
EXEC_FLAGS_ALL = 0xF

EXIT_CODE_KNOWN = 1 << 0
EXIT_SIGNALED = 1 << 1
EXIT_START_KNOWN = 1 << 2
EXIT_FLAGS_ALL = 0x7

OPEN_SYSCALLS = ("openat", "openat2")
OPEN_PATH_TRUNCATED = 1

AF_INET, AF_INET6 = 2, 10
TCP_DIRECTIONS = {1: "outbound", 2: "inbound"}


@dataclass(frozen=True)
class RecordLayout:
    """A C record as a struct format: fixed fields in order, then an optional variable tail."""

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


HEADER = (("hdr.boot_ns", "Q"), ("hdr.seq", "Q"), ("hdr.type", "I"), ("hdr.cpu", "I"))
TASK = (
    ("task.cgroup_id", "Q"),
    ("task.pid", "I"),
    ("task.tid", "I"),
    ("task.ppid", "I"),
    ("task.uid", "I"),
    ("task.gid", "I"),
    ("task.flags", "I"),
    ("task.comm", "16s"),
)

COUNTERS = RecordLayout("ekp_counters", (("seen", "Q"), ("submit_failed", "Q"), ("filtered", "Q")))

PROCESS_EXEC = RecordLayout(
    "ekp_process_exec",
    (
        *HEADER,
        *TASK,
        ("retval", "i"),
        ("flags", "I"),
        ("args_count", "H"),
        ("args_size", "H"),
        ("_pad", "I"),
        ("filename", "256s"),
    ),
    tail="args",
)
PROCESS_EXIT = RecordLayout(
    "ekp_process_exit",
    (*HEADER, *TASK, ("start_ns", "Q"), ("exit_code", "i"), ("signal", "I"), ("flags", "I"), ("_pad", "I")),
)
PROCESS_FORK = RecordLayout("ekp_process_fork", (*HEADER, *TASK, ("child_pid", "I"), ("_pad", "I")))
FILE_OPEN = RecordLayout(
    "ekp_file_open",
    (
        *HEADER,
        *TASK,
        ("open_flags", "Q"),
        ("mode", "I"),
        ("ret", "i"),
        ("syscall", "H"),
        ("path_size", "H"),
        ("flags", "I"),
    ),
    tail="path",
)
TCP = RecordLayout(
    "ekp_tcp",
    (
        *HEADER,
        *TASK,
        ("established_ns", "Q"),
        ("family", "H"),
        ("sport", "H"),
        ("dport", "H"),
        ("direction", "B"),
        ("_pad", "B"),
        ("saddr", "16s"),
        ("daddr", "16s"),
    ),
)

LAYOUTS = {
    "process_exec": PROCESS_EXEC,
    "process_exit": PROCESS_EXIT,
    "process_fork": PROCESS_FORK,
    "file_open": FILE_OPEN,
    "tcp_connect": TCP,
    "tcp_accept": TCP,
    "tcp_close": TCP,
}
# BPF map (in bpf/collector.bpf.c) whose value type is each mirrored struct.
LAYOUT_MAPS = {
    "ekp_layout_process_exec": PROCESS_EXEC,
    "ekp_layout_process_exit": PROCESS_EXIT,
    "ekp_layout_process_fork": PROCESS_FORK,
    "ekp_layout_file_open": FILE_OPEN,
    "ekp_layout_tcp": TCP,
    "ekp_layout_counters": COUNTERS,
}


@dataclass(frozen=True)
class DecodeContext:
    """What decoders need besides the bytes; fixed for a reader's life."""

    host: str
    boot_id: str
    max_args: int = 32
    max_arg_len: int = 128
    include_failed: bool = False  # process_exec: failed execs pass the kernel filter


def _text(raw: bytes, field: str) -> tuple[str, bool]:
    """NUL-terminated kernel bytes -> (str, escaped?).

    Linux paths and arguments are bytes, not UTF-8. Dropping an event because
    a name is not valid UTF-8 would let anyone hide a program or file from the
    stream by naming it so; instead invalid bytes are kept as \\xNN escapes and
    the record says so (strings_escaped).
    """
    end = raw.find(b"\0")
    if end < 0:
        raise DecodeError(f"{field}: not NUL-terminated")
    return _utf8(raw[:end])


def _utf8(b: bytes) -> tuple[str, bool]:
    try:
        return b.decode("utf-8"), False
    except UnicodeDecodeError:
        return b.decode("utf-8", "backslashreplace"), True


_COMMON = struct.Struct("<" + "".join(f for _, f in HEADER + TASK))
COMMON_SIZE = _COMMON.size


def _common(
    raw: bytes,
    cpu: int,
    layout_size: int,
    type_id: int,
    ctx: DecodeContext,
    boot_to_wall_ns: int,
    *,
    owner_may_be_unknown: bool = False,
) -> tuple[dict[str, Any], int, bool]:
    """Header and task of any record -> (the common fields, boot_ns, escaped?)."""
    if len(raw) < layout_size:
        raise DecodeError(f"truncated: {len(raw)} bytes, the fixed part alone is {layout_size}")
    (boot_ns, seq, typ, hdr_cpu, cgroup_id, pid, tid, ppid, uid, gid, tflags, comm_b) = _COMMON.unpack_from(
        raw
    )
    if typ != type_id:
        raise DecodeError(f"type {typ} in a buffer of type {type_id}")
    if hdr_cpu != cpu:
        raise DecodeError(f"record says cpu {hdr_cpu}, read from cpu {cpu}'s buffer")
    if tflags & ~TASK_FLAGS_ALL:
        raise DecodeError(f"unknown task flags {tflags:#x}")
    if boot_ns > INT64_MAX or seq > INT64_MAX or cgroup_id > INT64_MAX:
        raise DecodeError("a 64-bit field is beyond the Avro long range")
    unknown_owner = bool(tflags & TASK_OWNER_UNKNOWN)
    if unknown_owner and not owner_may_be_unknown:
        raise DecodeError("owner-unknown flag on a record that always has its process")
    if not unknown_owner and (not 0 < pid <= PID_MAX_LIMIT or not 0 < tid <= PID_MAX_LIMIT):
        raise DecodeError(f"pid {pid} / tid {tid} out of range")
    if ppid > PID_MAX_LIMIT:
        raise DecodeError(f"ppid {ppid} out of range")
    comm, escaped = _text(comm_b, "comm")
    rec: dict[str, Any] = {
        "timestamp": (boot_ns + boot_to_wall_ns) // 1000,
        "boot_ns": boot_ns,
        "host": ctx.host,
        "boot_id": ctx.boot_id,
        "cpu": cpu,
        "seq": seq,
        "pid": None if unknown_owner else pid,
        "tid": None if unknown_owner else tid,
        "ppid": None if tflags & (TASK_PPID_UNKNOWN | TASK_OWNER_UNKNOWN) else ppid,
        "uid": None if unknown_owner else uid,
        "gid": None if unknown_owner else gid,
        "comm": None if unknown_owner else comm,
        "cgroup_id": cgroup_id,
        "container_id": None,  # filled by the reader's container resolver
    }
    return rec, boot_ns, escaped


_EXEC = PROCESS_EXEC.struct
_EXEC_TYPE = EVENT_TYPE_IDS["process_exec"]


def decode_process_exec(raw: bytes, cpu: int, ctx: DecodeContext, boot_to_wall_ns: int) -> dict[str, Any]:
    """One raw process_exec record from CPU `cpu`'s perf buffer -> an Avro-ready dict.

    Raises DecodeError for any malformed input; never anything else for any bytes.
    """
    rec, _, escaped = _common(raw, cpu, _EXEC.size, _EXEC_TYPE, ctx, boot_to_wall_ns)
    retval, flags, args_count, args_size, _pad, filename_b = struct.unpack_from(
        "<iIHHI256s", raw, COMMON_SIZE
    )
    if flags & ~EXEC_FLAGS_ALL:
        raise DecodeError(f"unknown flags {flags:#x}")
    if retval > 0 or (retval < 0 and not ctx.include_failed):
        raise DecodeError(f"retval {retval} for a filter that passes only successful execs")
    if args_count > ctx.max_args or args_size > ctx.max_args * ctx.max_arg_len:
        raise DecodeError(f"args_count {args_count} / args_size {args_size} beyond the configured bounds")
    fixed = _EXEC.size
    if fixed + args_size > len(raw):
        raise DecodeError(f"args_size {args_size} runs past the record ({len(raw)} bytes)")
    argv: list[str] = []
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
            s, e = _utf8(p)
            argv.append(s)
            escaped |= e
    elif args_count:
        raise DecodeError(f"argv: args_count {args_count} with no bytes")
    filename, e2 = _text(filename_b, "filename")
    rec.update(
        {
            "filename": filename,
            "argv": argv,
            "argv_truncated": bool(flags & (EXEC_ARGV_TRUNCATED | EXEC_ARG_TRUNCATED)),
            "filename_truncated": bool(flags & EXEC_FILENAME_TRUNCATED),
            "argv_missing": bool(flags & EXEC_ARGV_MISSING),
            "strings_escaped": escaped or e2,
            "retval": retval,
        }
    )
    return rec


_EXIT = PROCESS_EXIT.struct
_EXIT_TYPE = EVENT_TYPE_IDS["process_exit"]


def signal_name(sig: int) -> str | None:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"SIGRT{sig - signal.SIGRTMIN}" if signal.SIGRTMIN <= sig <= signal.SIGRTMAX else None


def decode_process_exit(raw: bytes, cpu: int, ctx: DecodeContext, boot_to_wall_ns: int) -> dict[str, Any]:
    rec, boot_ns, escaped = _common(raw, cpu, _EXIT.size, _EXIT_TYPE, ctx, boot_to_wall_ns)
    start_ns, exit_code, sig, flags, _pad = struct.unpack_from("<QiIII", raw, COMMON_SIZE)
    if flags & ~EXIT_FLAGS_ALL or (flags & EXIT_CODE_KNOWN and flags & EXIT_SIGNALED):
        raise DecodeError(f"bad flags {flags:#x}")
    if flags & EXIT_CODE_KNOWN and not 0 <= exit_code <= 255:
        raise DecodeError(f"exit code {exit_code} out of range")
    if flags & EXIT_SIGNALED and not 1 <= sig <= 64:
        raise DecodeError(f"signal {sig} out of range")
    if flags & EXIT_START_KNOWN and start_ns > boot_ns:
        raise DecodeError("the process started after it exited")
    started = bool(flags & EXIT_START_KNOWN)
    rec.update(
        {
            "exit_code": exit_code if flags & EXIT_CODE_KNOWN else None,
            "signal": sig if flags & EXIT_SIGNALED else None,
            "signal_name": signal_name(sig) if flags & EXIT_SIGNALED else None,
            "start_time": (start_ns + boot_to_wall_ns) // 1000 if started else None,
            "lifetime_ns": boot_ns - start_ns if started else None,
            "strings_escaped": escaped,
        }
    )
    return rec


_FORK = PROCESS_FORK.struct
_FORK_TYPE = EVENT_TYPE_IDS["process_fork"]


def decode_process_fork(raw: bytes, cpu: int, ctx: DecodeContext, boot_to_wall_ns: int) -> dict[str, Any]:
    rec, _, escaped = _common(raw, cpu, _FORK.size, _FORK_TYPE, ctx, boot_to_wall_ns)
    (child_pid,) = struct.unpack_from("<I", raw, COMMON_SIZE)
    if not 0 < child_pid <= PID_MAX_LIMIT:
        raise DecodeError(f"child pid {child_pid} out of range")
    rec.update({"child_pid": child_pid, "strings_escaped": escaped})
    return rec


_OPEN = FILE_OPEN.struct
_OPEN_TYPE = EVENT_TYPE_IDS["file_open"]
_ACCMODE = {os.O_RDONLY: "O_RDONLY", os.O_WRONLY: "O_WRONLY", os.O_RDWR: "O_RDWR"}
# Composite flags first: their bits include simpler ones (O_SYNC has O_DSYNC's, O_TMPFILE has O_DIRECTORY's).
_OPEN_FLAG_NAMES = tuple(
    (name, getattr(os, name))
    for name in (
        "O_TMPFILE",
        "O_SYNC",
        "O_CREAT",
        "O_EXCL",
        "O_NOCTTY",
        "O_TRUNC",
        "O_APPEND",
        "O_NONBLOCK",
        "O_DSYNC",
        "O_ASYNC",
        "O_DIRECT",
        "O_LARGEFILE",
        "O_DIRECTORY",
        "O_NOFOLLOW",
        "O_NOATIME",
        "O_CLOEXEC",
        "O_PATH",
    )
    if hasattr(os, name)
)


def open_flag_names(flags: int) -> list[str]:
    """O_* names of an open() flags word, access mode first; unknown bits as a hex remainder."""
    names = [_ACCMODE.get(flags & os.O_ACCMODE, f"O_ACCMODE_{flags & os.O_ACCMODE}")]
    rest = flags & ~os.O_ACCMODE
    for name, value in _OPEN_FLAG_NAMES:
        if value and rest & value == value:
            names.append(name)
            rest &= ~value
    if rest:
        names.append(f"{rest:#x}")
    return names


def decode_file_open(raw: bytes, cpu: int, ctx: DecodeContext, boot_to_wall_ns: int) -> dict[str, Any]:
    rec, _, escaped = _common(raw, cpu, _OPEN.size, _OPEN_TYPE, ctx, boot_to_wall_ns)
    open_flags, mode, ret, syscall, path_size, flags = struct.unpack_from("<QIiHHI", raw, COMMON_SIZE)
    if syscall >= len(OPEN_SYSCALLS) or flags & ~OPEN_PATH_TRUNCATED:
        raise DecodeError(f"syscall {syscall} / flags {flags:#x} unknown")
    if open_flags > 0xFFFFFFFF or mode > 0o7777:
        raise DecodeError(f"open flags {open_flags:#x} / mode {mode:#o} out of range")
    if not 1 <= path_size <= 256 or _OPEN.size + path_size > len(raw):
        raise DecodeError(f"path_size {path_size} out of range or past the record ({len(raw)} bytes)")
    if ret < -4095:
        raise DecodeError(f"return value {ret} is neither an fd nor an errno")
    path, e2 = _text(raw[_OPEN.size : _OPEN.size + path_size], "path")
    creates = bool(open_flags & (os.O_CREAT | getattr(os, "O_TMPFILE", 0)))
    rec.update(
        {
            "syscall": OPEN_SYSCALLS[syscall],
            "path": path,
            "path_truncated": bool(flags & OPEN_PATH_TRUNCATED),
            "flags": open_flags,
            "flag_names": open_flag_names(open_flags),
            "mode": mode if creates else None,
            "fd": ret if ret >= 0 else None,
            "errno": -ret if ret < 0 else None,
            "error": errno_mod.errorcode.get(-ret) if ret < 0 else None,
            "strings_escaped": escaped or e2,
        }
    )
    return rec


_TCP = TCP.struct
_FAMILIES = {AF_INET: "inet", AF_INET6: "inet6"}


def _tcp_decoder(event_type: str) -> Decoder:
    type_id = EVENT_TYPE_IDS[event_type]
    closing = event_type == "tcp_close"

    def decode(raw: bytes, cpu: int, ctx: DecodeContext, boot_to_wall_ns: int) -> dict[str, Any]:
        rec, boot_ns, escaped = _common(
            raw, cpu, _TCP.size, type_id, ctx, boot_to_wall_ns, owner_may_be_unknown=True
        )
        est, family, sport, dport, direction, _pad, saddr, daddr = struct.unpack_from(
            "<QHHHBB16s16s", raw, COMMON_SIZE
        )
        if family not in _FAMILIES or direction not in TCP_DIRECTIONS:
            raise DecodeError(f"family {family} / direction {direction} unknown")
        if not 0 < est <= boot_ns:
            raise DecodeError("established time missing or after the event")
        rec.update(
            {
                "family": _FAMILIES[family],
                "saddr": _address(family, saddr),
                "sport": sport,
                "daddr": _address(family, daddr),
                "dport": dport,
                "strings_escaped": escaped,
            }
        )
        if closing:
            rec["direction"] = TCP_DIRECTIONS[direction]
            rec["lifetime_ns"] = boot_ns - est
        return rec

    return decode


def _address(family: int, raw16: bytes) -> str:
    if family == AF_INET:
        return str(ipaddress.IPv4Address(raw16[:4]))
    return str(ipaddress.IPv6Address(raw16))


Decoder = Callable[[bytes, int, DecodeContext, int], dict[str, Any]]
DECODERS: dict[str, Decoder] = {
    "process_exec": decode_process_exec,
    "process_exit": decode_process_exit,
    "process_fork": decode_process_fork,
    "file_open": decode_file_open,
    "tcp_connect": _tcp_decoder("tcp_connect"),
    "tcp_accept": _tcp_decoder("tcp_accept"),
    "tcp_close": _tcp_decoder("tcp_close"),
}


def peek_seq(raw: bytes) -> int | None:
    """The header's sequence number, if the record is long enough to hold one."""
    if len(raw) < 24:
        return None
    return int(_SEQ.unpack_from(raw, 8)[0])


_SEQ = struct.Struct("<Q")
