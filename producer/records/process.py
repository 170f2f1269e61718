"""The process family: process_exit and process_fork here, process_exec in records/process_exec.py.

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
from typing import Any, NamedTuple

from ..errors import DecodeError
from .abi import COMMON_SIZE, PATH_LEN, PID_MAX_LIMIT, event_layout
from .avro import (
    BOOLEAN,
    BRANCH1,
    NULL,
    ContainerOf,
    Encoder,
    Static,
    long_,
    opt_id,
    opt_string,
)
from .avro import common as encode_common
from .common import Common, DecodeContext, clean_utf8, common_dict, cstr, new, parse_common
from .identity import process_id

# process_exit flags
EXIT_CODE_KNOWN = 1 << 0
EXIT_SIGNALED = 1 << 1
EXIT_START_KNOWN = 1 << 2
EXIT_FLAGS_ALL = 0x7
# the largest signal number an exit may carry (Linux's _NSIG); also the native encoder's table size
EXIT_SIGNAL_MAX = 64

# process_fork flags
FORK_UNTRACKED = 1 << 0  # the child is not in the (full) process table: it has no identity
FORK_FLAGS_ALL = 0x1

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

_EXIT_SIZE, _EXIT_OWN = EXIT.struct.size, EXIT.own
_FORK_SIZE, _FORK_OWN = FORK.struct.size, FORK.own


# -- shared by the family --------------------------------------------------------------------------


def optional_name(raw: bytes, what: str) -> tuple[bytes | None, bool]:
    """A C string that may be empty ("" = not known -> None), as clean UTF-8."""
    b = cstr(raw, what)
    if not b:
        return None, False
    return clean_utf8(b)


def optional_id(ctx: DecodeContext, start_ns: int | None, pid: int | None) -> str | None:
    return None if start_ns is None or pid is None else process_id(ctx.boot, start_ns, pid)


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
    if flags & EXIT_SIGNALED and not 1 <= sig <= EXIT_SIGNAL_MAX:
        raise DecodeError(f"signal {sig} out of range")
    if flags & EXIT_START_KNOWN and fork_ns > c.boot_ns:
        raise DecodeError("the process started after it exited")
    filename, e2 = optional_name(filename_b, "filename")
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
        out, end = encode_common(raw, c, static, boot_to_wall_ns, container_of)
        out += [
            NULL if exit_code is None else BRANCH1 + long_(exit_code),
            NULL if sig is None else BRANCH1 + long_(sig),
            NULL if sig is None else _signal_name(sig),
            NULL if start_ns is None else BRANCH1 + long_((start_ns + boot_to_wall_ns) // 1000),
            NULL if start_ns is None else BRANCH1 + long_(c.boot_ns - start_ns),
            BOOLEAN[escaped],
            end,
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
    filename, e2 = optional_name(filename_b, "filename")
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
    rec["child_process_id"] = optional_id(ctx, p.child_start_ns, p.child_pid)
    return rec


def fork_encoder(static: Static, type_id: int) -> Encoder:
    def encode(raw: bytes, cpu: int, boot_to_wall_ns: int, container_of: ContainerOf) -> tuple[bytes, bool]:
        c, child_pid, child_start, _filename, _escaped = parse_fork(raw, cpu, type_id)
        out, end = encode_common(raw, c, static, boot_to_wall_ns, container_of)
        out += [
            long_(child_pid),
            BOOLEAN[c.escaped],
            end,
            opt_id(static.boot, child_start, child_pid),
        ]
        return b"".join(out), c.escaped

    return encode


def brief_fork(v: dict[str, Any]) -> str:
    return f"child_pid={v['child_pid']}"
