"""The file_open family: opens through openat(2) and openat2(2).

Its record layout (the mirror of struct ekp_file_open), parser, reference decoder, fast Avro encoder
and `tail --format brief` line; the catalog (records/catalog.py) ties them to the event type.
"""

from __future__ import annotations

import errno as errno_mod
import os
from typing import Any, NamedTuple, Protocol

from ..errors import DecodeError
from .abi import COMMON_SIZE, PATH_LEN, event_layout
from .avro import (
    BOOLEAN,
    BRANCH1,
    EMPTY_ARRAY,
    NULL,
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

# file_open.syscall
OPEN_OPENAT = 0
OPEN_OPENAT2 = 1
OPEN_SYSCALLS = {OPEN_OPENAT: "openat", OPEN_OPENAT2: "openat2"}
# file_open.flags
OPEN_PATH_TRUNCATED = 1 << 0

FILE_OPEN = event_layout(
    "ekp_file_open",
    ("open_flags", "Q"),
    ("mode", "I"),
    ("ret", "i"),
    ("syscall", "H"),
    ("path_size", "H"),
    ("flags", "I"),
    tail="path",
)
_SIZE, _OWN = FILE_OPEN.struct.size, FILE_OPEN.own

_ACCMODE = {os.O_RDONLY: "O_RDONLY", os.O_WRONLY: "O_WRONLY", os.O_RDWR: "O_RDWR"}
# Composite flags first: their bits include simpler ones (O_SYNC has O_DSYNC's, O_TMPFILE has O_DIRECTORY's).
# (Also the native encoder's table: producer/native/tables.py.)
OPEN_FLAG_NAMES = tuple(
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
# the flags that make `mode` meaningful
CREATING_FLAGS = os.O_CREAT | getattr(os, "O_TMPFILE", 0)


class OpenSection(Protocol):
    """What this family reads of events.file_open (path_prefixes are kernel filters: kernel/filters.py)."""

    @property
    def include_failed(self) -> bool: ...


def cflags(section: OpenSection) -> list[str]:
    return [f"-DEKP_OPEN_INCLUDE_FAILED={int(section.include_failed)}"]


def open_flag_names(flags: int) -> list[str]:
    """O_* names of an open() flags word, access mode first; unknown bits as a hex remainder."""
    names = [_ACCMODE.get(flags & os.O_ACCMODE, f"O_ACCMODE_{flags & os.O_ACCMODE}")]
    rest = flags & ~os.O_ACCMODE
    for name, value in OPEN_FLAG_NAMES:
        if value and rest & value == value:
            names.append(name)
            rest &= ~value
    if rest:
        names.append(f"{rest:#x}")
    return names


class FileOpen(NamedTuple):
    common: Common
    syscall: int  # OPEN_*
    path: bytes
    path_truncated: bool
    open_flags: int
    mode: int | None  # only when the open may create a file
    ret: int  # the fd, or -errno
    escaped: bool  # in comm or path


def parse(raw: bytes, cpu: int, type_id: int, _opts: object = None) -> FileOpen:
    c = parse_common(raw, cpu, _SIZE, type_id)
    open_flags, mode, ret, syscall, path_size, flags = _OWN.unpack_from(raw, COMMON_SIZE)
    if syscall not in OPEN_SYSCALLS or flags & ~OPEN_PATH_TRUNCATED:
        raise DecodeError(f"syscall {syscall} / flags {flags:#x} unknown")
    if open_flags > 0xFFFFFFFF or mode > 0o7777:
        raise DecodeError(f"open flags {open_flags:#x} / mode {mode:#o} out of range")
    if not 1 <= path_size <= PATH_LEN or _SIZE + path_size > len(raw):
        raise DecodeError(f"path_size {path_size} out of range or past the record ({len(raw)} bytes)")
    if ret < -4095:
        raise DecodeError(f"return value {ret} is neither an fd nor an errno")
    path, e2 = clean_utf8(cstr(raw[_SIZE : _SIZE + path_size], "path"))
    return new(
        FileOpen,
        (
            c,
            syscall,
            path,
            bool(flags & OPEN_PATH_TRUNCATED),
            open_flags,
            mode if open_flags & CREATING_FLAGS else None,
            ret,
            c.escaped or e2,
        ),
    )


def decode(raw: bytes, cpu: int, type_id: int, ctx: DecodeContext, boot_to_wall_ns: int) -> dict[str, Any]:
    p = parse(raw, cpu, type_id)
    ret = p.ret
    rec = common_dict(p.common, ctx, boot_to_wall_ns)
    rec.update(
        {
            "syscall": OPEN_SYSCALLS[p.syscall],
            "path": p.path.decode(),
            "path_truncated": p.path_truncated,
            "flags": p.open_flags,
            "flag_names": open_flag_names(p.open_flags),
            "mode": p.mode,
            "fd": ret if ret >= 0 else None,
            "errno": -ret if ret < 0 else None,
            "error": errno_mod.errorcode.get(-ret) if ret < 0 else None,
            "strings_escaped": p.escaped,
        }
    )
    return rec


_SYSCALLS = {k: string_(name.encode()) for k, name in OPEN_SYSCALLS.items()}


def _flag_names(flags: int, cache: dict[int, bytes] = {}) -> bytes:  # noqa: B006 - a deliberate memo
    enc = cache.get(flags)
    if enc is None:
        names = open_flag_names(flags)
        enc = cache[flags] = long_(len(names)) + b"".join(string_(n.encode()) for n in names) + EMPTY_ARRAY
    return enc


def encoder(static: Static, type_id: int) -> Encoder:
    def encode(raw: bytes, cpu: int, boot_to_wall_ns: int, container_of: ContainerOf) -> tuple[bytes, bool]:
        c, syscall, path, truncated, open_flags, mode, ret, escaped = parse(raw, cpu, type_id)
        out, end = encode_common(raw, c, static, boot_to_wall_ns, container_of)
        if ret >= 0:
            result = [BRANCH1 + long_(ret), NULL, NULL]
        else:
            name = errno_mod.errorcode.get(-ret)
            result = [NULL, BRANCH1 + long_(-ret), opt_string(None if name is None else name.encode())]
        out += [
            _SYSCALLS[syscall],
            string_(path),
            BOOLEAN[truncated],
            long_(open_flags),
            _flag_names(open_flags),
            opt_long(mode),
            *result,
            BOOLEAN[escaped],
            end,
        ]
        return b"".join(out), escaped

    return encode


def brief(v: dict[str, Any]) -> str:
    return f"{v['path']!r} {'|'.join(v['flag_names'])} -> {v['fd'] if v['fd'] is not None else v['error']}"
