"""The process family: process_exec, process_exit, process_fork.

For each: its record layout (the mirror of struct ekp_process_* in bpf/events.h) and flags, the
parser that validates a raw record into a typed result, the reference decoder (-> the dict
fastavro encodes), the fast Avro encoder (records/avro.py) and the `tail --format brief` line.
The catalog (records/catalog.py) ties them to an event type.
"""

from __future__ import annotations

import signal
from typing import Any, NamedTuple, Protocol

from ..errors import DecodeError
from .abi import COMMON_SIZE, PATH_LEN, PID_MAX_LIMIT, event_layout
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
    opt_long,
    opt_string,
    string_,
)
from .avro import common as encode_common
from .common import Common, DecodeContext, clean_utf8, common_dict, cstr, new, parse_common

# process_exec flags
EXEC_ARGV_TRUNCATED = 1 << 0
EXEC_ARG_TRUNCATED = 1 << 1
EXEC_FILENAME_TRUNCATED = 1 << 2
EXEC_ARGV_MISSING = 1 << 3
EXEC_FLAGS_ALL = 0xF

# process_exit flags
EXIT_CODE_KNOWN = 1 << 0
EXIT_SIGNALED = 1 << 1
EXIT_START_KNOWN = 1 << 2
EXIT_FLAGS_ALL = 0x7

EXEC = event_layout(
    "ekp_process_exec",
    ("retval", "i"),
    ("flags", "I"),
    ("args_count", "H"),
    ("args_size", "H"),
    ("_pad", "I"),
    ("filename", f"{PATH_LEN}s"),
    tail="args",
)
EXIT = event_layout(
    "ekp_process_exit", ("start_ns", "Q"), ("exit_code", "i"), ("signal", "I"), ("flags", "I"), ("_pad", "I")
)
FORK = event_layout("ekp_process_fork", ("child_pid", "I"), ("_pad", "I"))

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
    escaped: bool  # in comm, filename or argv
    retval: int


def parse_exec(raw: bytes, cpu: int, type_id: int, opts: ExecOptions) -> Exec:
    c = parse_common(raw, cpu, _EXEC_SIZE, type_id)
    retval, flags, args_count, args_size, _pad, filename_b = _EXEC_OWN.unpack_from(raw, COMMON_SIZE)
    if flags & ~EXEC_FLAGS_ALL:
        raise DecodeError(f"unknown flags {flags:#x}")
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
    return new(
        Exec,
        (
            c,
            filename,
            argv,
            bool(flags & (EXEC_ARGV_TRUNCATED | EXEC_ARG_TRUNCATED)),
            bool(flags & EXEC_FILENAME_TRUNCATED),
            bool(flags & EXEC_ARGV_MISSING),
            escaped or e2,
            retval,
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
        }
    )
    return rec


def exec_encoder(static: Static, type_id: int) -> Encoder:
    opts = static.ctx.option("process_exec", ExecOptions)

    def encode(raw: bytes, cpu: int, boot_to_wall_ns: int, container_of: ContainerOf) -> tuple[bytes, bool]:
        c, filename, argv, argv_trunc, fn_trunc, missing, escaped, retval = parse_exec(
            raw, cpu, type_id, opts
        )
        boot_ns, seq, _cpu, pid, tid, ppid, uid, gid, comm, cgroup_id, _ = c
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
        ]
        return b"".join(out), escaped

    return encode


def brief_exec(v: dict[str, Any]) -> str:
    return f"ppid={v['ppid']} uid={v['uid']} argv={' '.join(v['argv'])!r}"


# -- process_exit ------------------------------------------------------------------------------------


class Exit(NamedTuple):
    common: Common
    exit_code: int | None
    signal: int | None
    start_ns: int | None


def signal_name(sig: int) -> str | None:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"SIGRT{sig - signal.SIGRTMIN}" if signal.SIGRTMIN <= sig <= signal.SIGRTMAX else None


def parse_exit(raw: bytes, cpu: int, type_id: int, _opts: object = None) -> Exit:
    c = parse_common(raw, cpu, _EXIT_SIZE, type_id)
    start_ns, exit_code, sig, flags, _pad = _EXIT_OWN.unpack_from(raw, COMMON_SIZE)
    if flags & ~EXIT_FLAGS_ALL or (flags & EXIT_CODE_KNOWN and flags & EXIT_SIGNALED):
        raise DecodeError(f"bad flags {flags:#x}")
    if flags & EXIT_CODE_KNOWN and not 0 <= exit_code <= 255:
        raise DecodeError(f"exit code {exit_code} out of range")
    if flags & EXIT_SIGNALED and not 1 <= sig <= 64:
        raise DecodeError(f"signal {sig} out of range")
    if flags & EXIT_START_KNOWN and start_ns > c.boot_ns:
        raise DecodeError("the process started after it exited")
    return new(
        Exit,
        (
            c,
            exit_code if flags & EXIT_CODE_KNOWN else None,
            sig if flags & EXIT_SIGNALED else None,
            start_ns if flags & EXIT_START_KNOWN else None,
        ),
    )


def decode_exit(
    raw: bytes, cpu: int, type_id: int, ctx: DecodeContext, boot_to_wall_ns: int
) -> dict[str, Any]:
    c, exit_code, sig, start_ns = parse_exit(raw, cpu, type_id)
    rec = common_dict(c, ctx, boot_to_wall_ns)
    rec.update(
        {
            "exit_code": exit_code,
            "signal": sig,
            "signal_name": None if sig is None else signal_name(sig),
            "start_time": None if start_ns is None else (start_ns + boot_to_wall_ns) // 1000,
            "lifetime_ns": None if start_ns is None else c.boot_ns - start_ns,
        }
    )
    return rec


def exit_encoder(static: Static, type_id: int) -> Encoder:
    def encode(raw: bytes, cpu: int, boot_to_wall_ns: int, container_of: ContainerOf) -> tuple[bytes, bool]:
        c, exit_code, sig, start_ns = parse_exit(raw, cpu, type_id)
        out = encode_common(c, static, boot_to_wall_ns, container_of)
        out += [
            NULL if exit_code is None else BRANCH1 + long_(exit_code),
            NULL if sig is None else BRANCH1 + long_(sig),
            NULL if sig is None else _signal_name(sig),
            NULL if start_ns is None else BRANCH1 + long_((start_ns + boot_to_wall_ns) // 1000),
            NULL if start_ns is None else BRANCH1 + long_(c.boot_ns - start_ns),
            BOOLEAN[c.escaped],
        ]
        return b"".join(out), c.escaped

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


def parse_fork(raw: bytes, cpu: int, type_id: int, _opts: object = None) -> Fork:
    c = parse_common(raw, cpu, _FORK_SIZE, type_id)
    child_pid, _pad = _FORK_OWN.unpack_from(raw, COMMON_SIZE)
    if not 0 < child_pid <= PID_MAX_LIMIT:
        raise DecodeError(f"child pid {child_pid} out of range")
    return new(Fork, (c, child_pid))


def decode_fork(
    raw: bytes, cpu: int, type_id: int, ctx: DecodeContext, boot_to_wall_ns: int
) -> dict[str, Any]:
    c, child_pid = parse_fork(raw, cpu, type_id)
    rec = common_dict(c, ctx, boot_to_wall_ns)
    rec["child_pid"] = child_pid
    return rec


def fork_encoder(static: Static, type_id: int) -> Encoder:
    def encode(raw: bytes, cpu: int, boot_to_wall_ns: int, container_of: ContainerOf) -> tuple[bytes, bool]:
        c, child_pid = parse_fork(raw, cpu, type_id)
        out = encode_common(c, static, boot_to_wall_ns, container_of)
        out += [long_(child_pid), BOOLEAN[c.escaped]]
        return b"".join(out), c.escaped

    return encode


def brief_fork(v: dict[str, Any]) -> str:
    return f"child_pid={v['child_pid']}"
