"""process_exec: the parser, reference decoder, fast encoder and brief line of an exec record.

Its layout (the mirror of struct ekp_process_exec in bpf/events.h) and flags are here; the rest of
the family (exit, fork) is in records/process.py. An exec starts a new identity
(records/identity.py): the record says which image it replaced, names the parent's program, and can
carry its ancestors inline (records/ancestry.py).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from ..errors import DecodeError
from . import ancestry
from .abi import COMM_LEN, COMMON_SIZE, PATH_LEN, event_layout
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
from .common import Common, DecodeContext, clean_utf8, common_dict, cstr, new, parse_common
from .identity import process_id
from .process import optional_id, optional_name

# process_exec flags
EXEC_ARGV_TRUNCATED = 1 << 0
EXEC_ARG_TRUNCATED = 1 << 1
EXEC_FILENAME_TRUNCATED = 1 << 2
EXEC_ARGV_MISSING = 1 << 3
EXEC_PREV_KNOWN = 1 << 4
EXEC_PARENT_KNOWN = 1 << 5
EXEC_FLAGS_ALL = 0x3F

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

_EXEC_SIZE, _EXEC_OWN = EXEC.struct.size, EXEC.own


# -- process_exec ------------------------------------------------------------------------------------


class ExecSection(Protocol):
    """What this family reads of events.process_exec."""

    @property
    def max_args(self) -> int: ...
    @property
    def max_arg_len(self) -> int: ...
    @property
    def include_failed(self) -> bool: ...
    @property
    def ancestors(self) -> int: ...


class ExecOptions(NamedTuple):
    max_args: int = 32
    max_arg_len: int = 128
    include_failed: bool = False  # failed execs pass the kernel's filter
    ancestors: int = 0  # inline ancestors this deep (records/ancestry.py); 0: the field is null


def exec_options(section: ExecSection) -> ExecOptions:
    return ExecOptions(section.max_args, section.max_arg_len, section.include_failed, section.ancestors)


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
        pfile, e3 = optional_name(pfile_b, "parent_filename")
        pcomm, e4 = optional_name(pcomm_b, "parent_comm")
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
            "previous_process_id": optional_id(ctx, p.previous_start_ns, p.common.pid),
            "parent_filename": None if p.parent_filename is None else p.parent_filename.decode(),
            "parent_comm": None if p.parent_comm is None else p.parent_comm.decode(),
            "ancestors": None,
        }
    )
    depth = ctx.option("process_exec", ExecOptions).ancestors
    if depth and ctx.procs is not None:
        chain = ancestry.walk(ctx.procs, p.common.ppid, p.common.parent_start_ns, depth)
        rec["ancestors"] = ancestry.as_dicts(ctx.boot, chain)
        rec["strings_escaped"] = p.escaped or any(a.escaped for a in chain)
    return rec


def exec_encoder(static: Static, type_id: int) -> Encoder:
    opts = static.ctx.option("process_exec", ExecOptions)
    procs, depth, boot = static.ctx.procs, opts.ancestors, static.boot
    if procs is None:
        depth = 0

    def encode(raw: bytes, cpu: int, boot_to_wall_ns: int, container_of: ContainerOf) -> tuple[bytes, bool]:
        c, filename, argv, argv_trunc, fn_trunc, missing, escaped, retval, prev, pfile, pcomm = parse_exec(
            raw, cpu, type_id, opts
        )
        boot_ns, seq, _cpu, pid, tid, ppid, uid, gid, comm, cgroup_id, *_ = c
        assert pid is not None and uid is not None and gid is not None and comm is not None
        ancestors = NULL
        if depth:
            assert procs is not None
            chain = ancestry.walk(procs, ppid, c.parent_start_ns, depth)
            ancestors = _ancestors(boot, chain)
            escaped = escaped or any(a.escaped for a in chain)
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
            ancestors,
        ]
        return b"".join(out), escaped

    return encode


def _ancestors(boot: str, chain: list[ancestry.Ancestor]) -> bytes:
    """The ancestors union's array branch: a block of `len(chain)` items, then the end block."""
    if not chain:
        return BRANCH1 + EMPTY_ARRAY
    items = [string_(process_id(boot, a.start_ns, a.pid).encode()) + opt_string(a.filename) for a in chain]
    return BRANCH1 + long_(len(chain)) + b"".join(items) + EMPTY_ARRAY


def brief_exec(v: dict[str, Any]) -> str:
    parent = f" parent={v['parent_comm']}" if v.get("parent_comm") else ""
    return f"ppid={v['ppid']}{parent} uid={v['uid']} argv={' '.join(v['argv'])!r} id={v.get('process_id')}"
