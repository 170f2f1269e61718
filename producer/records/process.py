"""The process family: process_exec, process_exit, process_fork.

Every record carries the identity of its process's image and of its parent's (records/identity.py),
from the kernel's process table. An exec starts a new identity (the record says which image it
replaced, and names the parent's program); a fork's record names the child's new identity.

For each: its record layout (the mirror of struct ekp_process_* in bpf/events.h) and flags, the
parser that validates a raw record into a typed result, the reference decoder (-> the dict
fastavro encodes), the fast Avro encoder (records/avro.py) and the `tail --format brief` line.
The catalog (records/catalog.py) ties them to an event type.
"""

from __future__ import annotations

import signal
from typing import Any, NamedTuple, Protocol

from ..errors import DecodeError
from .abi import COMM_LEN, COMMON_SIZE, PATH_LEN, PID_MAX_LIMIT, event_layout
from .avro import (
    BOOLEAN,
    BRANCH1,
    EMPTY_ARRAY,
    NULL,
    SMALL,
    ContainerOf,
    Encoder,
    Static,
    long_,
    opt_id,
    opt_long,
    opt_string,
    string_,
    tail,
)
from .avro import common as encode_common
from .common import Common, DecodeContext, clean_utf8, common_dict, cstr, new, parse_common
from .identity import process_id

# process_exec flags
EXEC_ARGV_TRUNCATED = 1 << 0
EXEC_ARG_TRUNCATED = 1 << 1
EXEC_FILENAME_TRUNCATED = 1 << 2
EXEC_ARGV_MISSING = 1 << 3
EXEC_PREV_KNOWN = 1 << 4
EXEC_PARENT_KNOWN = 1 << 5
EXEC_FLAGS_ALL = 0x3F

# process_exit flags
EXIT_CODE_KNOWN = 1 << 0
EXIT_SIGNALED = 1 << 1
EXIT_START_KNOWN = 1 << 2
EXIT_FLAGS_ALL = 0x7

# process_fork flags
FORK_UNTRACKED = 1 << 0  # the child is not in the (full) process table: it has no identity
FORK_FLAGS_ALL = 0x1

EXEC = event_layout(
    "ekp_process_exec",
    ("prev_start_ns", "Q"),
    ("retval", "i"),
    ("flags", "I"),
    ("args_count", "H"),
    ("args_size", "H"),
    ("_pad", "I"),
    ("filename", f"{PATH_LEN}s"),
    ("parent_comm", f"{COMM_LEN}s"),
    ("parent_filename", f"{PATH_LEN}s"),
    tail="args",
)
EXIT = event_layout(
    "ekp_process_exit",
    ("fork_ns", "Q"),
    ("exit_code", "i"),
    ("signal", "I"),
    ("flags", "I"),
    ("_pad", "I"),
    ("filename", f"{PATH_LEN}s"),
)
FORK = event_layout(
    "ekp_process_fork",
    ("child_start_ns", "Q"),
    ("child_pid", "I"),
    ("flags", "I"),
    ("filename", f"{PATH_LEN}s"),
)

_EXEC_SIZE, _EXEC_OWN = EXEC.struct.size, EXEC.own
_EXIT_SIZE, _EXIT_OWN = EXIT.struct.size, EXIT.own
_FORK_SIZE, _FORK_OWN = FORK.struct.size, FORK.own


# -- process_exec ------------------------------------------------------------------------------------


class ExecSection(Protocol):
    """What this family reads of events.process_exec."""

    @property
    def max_args(self) -> int: ...
    @property
    def max_arg_len(self) -> int: ...
    @property
    def include_failed(self) -> bool: ...


class ExecOptions(NamedTuple):
    max_args: int = 32
    max_arg_len: int = 128
    include_failed: bool = False  # failed execs pass the kernel's filter


def exec_options(section: ExecSection) -> ExecOptions:
    return ExecOptions(section.max_args, section.max_arg_len, section.include_failed)


def exec_cflags(section: ExecSection) -> list[str]:
    return [
        f"-DEKP_MAX_ARGS={section.max_args}",
        f"-DEKP_MAX_ARG_LEN={section.max_arg_len}",
        f"-DEKP_EXEC_INCLUDE_FAILED={int(section.include_failed)}",
    ]


class Exec(NamedTuple):
    common: Common
    filename: bytes
    argv: list[bytes]
    argv_truncated: bool
    filename_truncated: bool
    argv_missing: bool
    escaped: bool  # in comm, filename, argv or the parent's names
    retval: int
    previous_start_ns: int | None  # the image this exec replaced (same pid)
    parent_filename: bytes | None  # the parent's image, when it is still the one that forked us
    parent_comm: bytes | None


def _name(raw: bytes, what: str) -> tuple[bytes | None, bool]:
    """A C string that may be empty ("" = not known -> None), as clean UTF-8."""
    b = cstr(raw, what)
    if not b:
        return None, False
    return clean_utf8(b)


def parse_exec(raw: bytes, cpu: int, type_id: int, opts: ExecOptions) -> Exec:
    c = parse_common(raw, cpu, _EXEC_SIZE, type_id)
    prev, retval, flags, args_count, args_size, _pad, filename_b, pcomm_b, pfile_b = _EXEC_OWN.unpack_from(
        raw, COMMON_SIZE
    )
    if flags & ~EXEC_FLAGS_ALL:
        raise DecodeError(f"unknown flags {flags:#x}")
    if flags & EXEC_PREV_KNOWN and (c.start_ns is None or not 0 < prev < c.start_ns):
        raise DecodeError(f"replaced image's start {prev} not before this one's {c.start_ns}")
    if retval > 0 or (retval < 0 and not opts.include_failed):
        raise DecodeError(f"retval {retval} for a filter that passes only successful execs")
    max_args, max_arg_len = opts.max_args, opts.max_arg_len
    if args_count > max_args or args_size > max_args * max_arg_len:
        raise DecodeError(f"args_count {args_count} / args_size {args_size} beyond the configured bounds")
    if _EXEC_SIZE + args_size > len(raw):
        raise DecodeError(f"args_size {args_size} runs past the record ({len(raw)} bytes)")
    escaped = c.escaped
    argv: list[bytes] = []
    if args_size:
        blob = raw[_EXEC_SIZE : _EXEC_SIZE + args_size]
        if blob[-1] != 0:
            raise DecodeError("argv: last string not NUL-terminated")
        parts = blob[:-1].split(b"\0")
        if len(parts) != args_count:
            raise DecodeError(f"argv: {len(parts)} strings, header says {args_count}")
        for p in parts:
            if len(p) >= max_arg_len:
                raise DecodeError(f"argv: a string of {len(p)} bytes, limit {max_arg_len - 1}")
            if p.isascii():  # clean_utf8's first test, without the call
                argv.append(p)
            else:
                b, e = clean_utf8(p)
                argv.append(b)
                escaped |= e
    elif args_count:
        raise DecodeError(f"argv: args_count {args_count} with no bytes")
    filename, e2 = clean_utf8(cstr(filename_b, "filename"))
    pfile = pcomm = None
    e3 = e4 = False
    if flags & EXEC_PARENT_KNOWN:
        pfile, e3 = _name(pfile_b, "parent_filename")
        pcomm, e4 = _name(pcomm_b, "parent_comm")
    return new(
        Exec,
        (
            c,
            filename,
            argv,
            bool(flags & (EXEC_ARGV_TRUNCATED | EXEC_ARG_TRUNCATED)),
            bool(flags & EXEC_FILENAME_TRUNCATED),
            bool(flags & EXEC_ARGV_MISSING),
            escaped or e2 or e3 or e4,
            retval,
            prev if flags & EXEC_PREV_KNOWN else None,
            pfile,
            pcomm,
        ),
    )


def decode_exec(
    raw: bytes, cpu: int, type_id: int, ctx: DecodeContext, boot_to_wall_ns: int
) -> dict[str, Any]:
    """One raw process_exec record from CPU `cpu`'s perf buffer -> an Avro-ready dict.

    Raises DecodeError for any malformed input; never anything else for any bytes.
    """
    p = parse_exec(raw, cpu, type_id, ctx.option("process_exec", ExecOptions))
    rec = common_dict(p.common, ctx, boot_to_wall_ns)
    rec.update(
        {
            "filename": p.filename.decode(),
            "argv": [a.decode() for a in p.argv],
            "argv_truncated": p.argv_truncated,
            "filename_truncated": p.filename_truncated,
            "argv_missing": p.argv_missing,
            "strings_escaped": p.escaped,
            "retval": p.retval,
            "previous_process_id": _id(ctx, p.previous_start_ns, p.common.pid),
            "parent_filename": None if p.parent_filename is None else p.parent_filename.decode(),
            "parent_comm": None if p.parent_comm is None else p.parent_comm.decode(),
        }
    )
    return rec


def _id(ctx: DecodeContext, start_ns: int | None, pid: int | None) -> str | None:
    return None if start_ns is None or pid is None else process_id(ctx.boot, start_ns, pid)


def exec_encoder(static: Static, type_id: int) -> Encoder:
    opts = static.ctx.option("process_exec", ExecOptions)

    def encode(raw: bytes, cpu: int, boot_to_wall_ns: int, container_of: ContainerOf) -> tuple[bytes, bool]:
        c, filename, argv, argv_trunc, fn_trunc, missing, escaped, retval, prev, pfile, pcomm = parse_exec(
            raw, cpu, type_id, opts
        )
        boot_ns, seq, _cpu, pid, tid, ppid, uid, gid, comm, cgroup_id, *_ = c
        assert pid is not None and uid is not None and gid is not None and comm is not None
        # process_exec keeps its v1 field order; tid and container_id (v2) come last
        out = [
            static.prefix,
            long_((boot_ns + boot_to_wall_ns) // 1000),
            long_(boot_ns),
            static.host_boot,
            SMALL[cpu << 1],
            long_(seq),
            long_(pid),
            opt_long(ppid),
            long_(uid),
            long_(gid),
            string_(comm),
            string_(filename),
        ]
        if argv:
            out.append(long_(len(argv)))
            out += [string_(a) for a in argv]
        out += [
            EMPTY_ARRAY,
            BOOLEAN[argv_trunc],
            BOOLEAN[fn_trunc],
            BOOLEAN[missing],
            BOOLEAN[escaped],
            long_(retval),
            long_(cgroup_id),
            opt_long(tid),
            static.containers.get(cgroup_id) or static.container(cgroup_id, container_of),
            tail(c, static, container_of),
            opt_id(static.boot, prev, pid),
            opt_string(pfile),
            opt_string(pcomm),
        ]
        return b"".join(out), escaped

    return encode


def brief_exec(v: dict[str, Any]) -> str:
    parent = f" parent={v['parent_comm']}" if v.get("parent_comm") else ""
    return f"ppid={v['ppid']}{parent} uid={v['uid']} argv={' '.join(v['argv'])!r} id={v.get('process_id')}"


# -- process_exit ------------------------------------------------------------------------------------


class Exit(NamedTuple):
    common: Common
    exit_code: int | None
    signal: int | None
    fork_ns: int | None  # when the process started (its fork, or /proc): its lifetime
    filename: bytes | None  # the program of the image that ended
    escaped: bool


def signal_name(sig: int) -> str | None:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"SIGRT{sig - signal.SIGRTMIN}" if signal.SIGRTMIN <= sig <= signal.SIGRTMAX else None


def parse_exit(raw: bytes, cpu: int, type_id: int, _opts: object = None) -> Exit:
    c = parse_common(raw, cpu, _EXIT_SIZE, type_id)
    fork_ns, exit_code, sig, flags, _pad, filename_b = _EXIT_OWN.unpack_from(raw, COMMON_SIZE)
    if flags & ~EXIT_FLAGS_ALL or (flags & EXIT_CODE_KNOWN and flags & EXIT_SIGNALED):
        raise DecodeError(f"bad flags {flags:#x}")
    if flags & EXIT_CODE_KNOWN and not 0 <= exit_code <= 255:
        raise DecodeError(f"exit code {exit_code} out of range")
    if flags & EXIT_SIGNALED and not 1 <= sig <= 64:
        raise DecodeError(f"signal {sig} out of range")
    if flags & EXIT_START_KNOWN and fork_ns > c.boot_ns:
        raise DecodeError("the process started after it exited")
    filename, e2 = _name(filename_b, "filename")
    return new(
        Exit,
        (
            c,
            exit_code if flags & EXIT_CODE_KNOWN else None,
            sig if flags & EXIT_SIGNALED else None,
            fork_ns if flags & EXIT_START_KNOWN else None,
            filename,
            c.escaped or e2,
        ),
    )


def decode_exit(
    raw: bytes, cpu: int, type_id: int, ctx: DecodeContext, boot_to_wall_ns: int
) -> dict[str, Any]:
    c, exit_code, sig, start_ns, filename, escaped = parse_exit(raw, cpu, type_id)
    rec = common_dict(c, ctx, boot_to_wall_ns)
    rec.update(
        {
            "exit_code": exit_code,
            "signal": sig,
            "signal_name": None if sig is None else signal_name(sig),
            "start_time": None if start_ns is None else (start_ns + boot_to_wall_ns) // 1000,
            "lifetime_ns": None if start_ns is None else c.boot_ns - start_ns,
            "strings_escaped": escaped,
            "filename": None if filename is None else filename.decode(),
        }
    )
    return rec


def exit_encoder(static: Static, type_id: int) -> Encoder:
    def encode(raw: bytes, cpu: int, boot_to_wall_ns: int, container_of: ContainerOf) -> tuple[bytes, bool]:
        c, exit_code, sig, start_ns, filename, escaped = parse_exit(raw, cpu, type_id)
        out = encode_common(c, static, boot_to_wall_ns, container_of)
        out += [
            NULL if exit_code is None else BRANCH1 + long_(exit_code),
            NULL if sig is None else BRANCH1 + long_(sig),
            NULL if sig is None else _signal_name(sig),
            NULL if start_ns is None else BRANCH1 + long_((start_ns + boot_to_wall_ns) // 1000),
            NULL if start_ns is None else BRANCH1 + long_(c.boot_ns - start_ns),
            BOOLEAN[escaped],
            tail(c, static, container_of),
            opt_string(filename),
        ]
        return b"".join(out), escaped

    return encode


def _signal_name(sig: int, cache: dict[int, bytes] = {}) -> bytes:  # noqa: B006 - a deliberate memo
    """signal_name, Avro-encoded as the optional string of the schema."""
    enc = cache.get(sig)
    if enc is None:
        name = signal_name(sig)
        enc = cache[sig] = opt_string(None if name is None else name.encode())
    return enc


def brief_exit(v: dict[str, Any]) -> str:
    how = f"exit_code={v['exit_code']}" if v["signal"] is None else f"signal={v['signal_name']}"
    return how + (f" lifetime={v['lifetime_ns'] / 1e9:.3f}s" if v["lifetime_ns"] is not None else "")


# -- process_fork ------------------------------------------------------------------------------------


class Fork(NamedTuple):
    common: Common  # the parent's
    child_pid: int
    child_start_ns: int | None  # the child's identity; None when the process table had no room
    filename: bytes | None  # the program parent and child run (the processes topic's entry)
    escaped: bool  # in comm or filename


def parse_fork(raw: bytes, cpu: int, type_id: int, _opts: object = None) -> Fork:
    c = parse_common(raw, cpu, _FORK_SIZE, type_id)
    child_start, child_pid, flags, filename_b = _FORK_OWN.unpack_from(raw, COMMON_SIZE)
    if not 0 < child_pid <= PID_MAX_LIMIT:
        raise DecodeError(f"child pid {child_pid} out of range")
    if flags & ~FORK_FLAGS_ALL:
        raise DecodeError(f"unknown flags {flags:#x}")
    if not flags & FORK_UNTRACKED and not 0 < child_start <= c.boot_ns:
        raise DecodeError(f"child start {child_start} out of range")
    filename, e2 = _name(filename_b, "filename")
    return new(
        Fork,
        (c, child_pid, None if flags & FORK_UNTRACKED else child_start, filename, c.escaped or e2),
    )


def decode_fork(
    raw: bytes, cpu: int, type_id: int, ctx: DecodeContext, boot_to_wall_ns: int
) -> dict[str, Any]:
    p = parse_fork(raw, cpu, type_id)
    rec = common_dict(p.common, ctx, boot_to_wall_ns)
    rec["child_pid"] = p.child_pid
    rec["child_process_id"] = _id(ctx, p.child_start_ns, p.child_pid)
    return rec


def fork_encoder(static: Static, type_id: int) -> Encoder:
    def encode(raw: bytes, cpu: int, boot_to_wall_ns: int, container_of: ContainerOf) -> tuple[bytes, bool]:
        c, child_pid, child_start, _filename, _escaped = parse_fork(raw, cpu, type_id)
        out = encode_common(c, static, boot_to_wall_ns, container_of)
        out += [
            long_(child_pid),
            BOOLEAN[c.escaped],
            tail(c, static, container_of),
            opt_id(static.boot, child_start, child_pid),
        ]
        return b"".join(out), c.escaped

    return encode


def brief_fork(v: dict[str, Any]) -> str:
    return f"child_pid={v['child_pid']}"
