"""Inline ancestors of an exec (events.process_exec.ancestors): parent, grandparent, ... as ids and programs.

The processes topic alone rebuilds any ancestry (docs/design.md), but a SIEM rule such as "a shell whose
grandparent is a web server" should need no join. The kernel's process table (bpf/collector.bpf.c
ekp_procs) holds every live process's image start, its parent's pid and image start, and its program;
every reader sees it, so the chain comes from state shared by all readers, never from one reader's memory.

The walk happens when the record is encoded, a few milliseconds after the exec. An ancestor is taken only
while the table's entry is still the image the record names (same pid, same start): one that exited or
exec'd since ends the chain rather than be guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from .identity import process_id

# The deepest chain a record may carry: each level is a map lookup (a system call) per exec.
MAX_DEPTH = 16


class Proc(NamedTuple):
    """One process table entry, as the walk needs it."""

    start_ns: int
    parent_start_ns: int
    ppid: int
    filename: bytes | None  # clean UTF-8, None when not known
    escaped: bool  # the filename had to be escaped to be UTF-8


# pid -> its entry in the process table, or None
Lookup = Callable[[int], "Proc | None"]


class Ancestor(NamedTuple):
    pid: int
    start_ns: int
    filename: bytes | None
    escaped: bool


def walk(lookup: Lookup, ppid: int | None, parent_start_ns: int | None, depth: int) -> list[Ancestor]:
    """Up to `depth` ancestors, the parent first, for as long as the table still holds each image."""
    out: list[Ancestor] = []
    pid, start = ppid, parent_start_ns
    while len(out) < depth and pid and start:
        p = lookup(pid)
        if p is None or p.start_ns != start:
            break
        out.append(Ancestor(pid, start, p.filename, p.escaped))
        pid, start = p.ppid, p.parent_start_ns
    return out


def as_dicts(boot: str, chain: Sequence[Ancestor]) -> list[dict[str, Any]]:
    return [
        {
            "process_id": process_id(boot, a.start_ns, a.pid),
            "filename": None if a.filename is None else a.filename.decode(),
        }
        for a in chain
    ]
