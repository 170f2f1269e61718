"""What happened before the programs attached, from /proc into their maps: processes and listeners.

The programs learn processes (fork, exec, exit) and listening sockets (listen()) as they happen;
without this seed every process older than the collector would have no identity, no parent and no
program in the process table, and connections accepted by an older listener no process.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from ..config import Config
from ..records import catalog
from ..records.abi import (
    COMM_LEN,
    PATH_LEN,
    PROC_PARENT_UNKNOWN,
    PROC_SEEDED,
    TASK_PARENT_UNKNOWN,
)
from ..records.identity import start_ns_of_ticks
from . import procfs
from .build import BpfModule

log = structlog.get_logger("loader")


@dataclass
class Seeded:
    """What was seeded: counts for the start-up log, and the processes (for the processes topic)."""

    counts: dict[str, int] = field(default_factory=dict)
    processes: list[procfs.Process] = field(default_factory=list)
    table_full: int = 0  # processes the table had no room for


def seed(module: BpfModule, cfg: Config) -> Seeded:
    """Fill the maps. The process table always (every record's identity and parent); the rest as the
    enabled event types ask (catalog: `seeds`)."""
    out = Seeded()
    procs = {p.pid: p for p in procfs.processes()}
    out.processes, out.table_full = _seed_processes(module.table("ekp_procs"), procs)
    out.counts["processes"] = len(out.processes)
    if out.table_full:
        log.warning(
            "process_table_full_at_start", untracked=out.table_full, hint="raise events.processes.table_size"
        )
    wanted = {s for e in catalog.enabled(cfg) for s in e.seeds}
    if "listeners" in wanted:
        out.counts["listeners"] = _seed_listeners(module.table("ekp_listeners"), procs)
    return out


def _seed_processes(table: Any, procs: dict[int, procfs.Process]) -> tuple[list[procfs.Process], int]:
    seeded, full = [], 0
    for p in procs.values():
        leaf = table.Leaf()
        leaf.start_ns = leaf.fork_ns = start_ns_of_ticks(p.starttime)
        leaf.ppid = p.ppid
        parent = procs.get(p.ppid)
        if parent is not None:
            leaf.parent_start_ns = start_ns_of_ticks(parent.starttime)
            leaf.flags = PROC_SEEDED
        else:  # pid 1 and kthreadd (ppid 0), or a parent gone while we read
            leaf.flags = PROC_SEEDED | PROC_PARENT_UNKNOWN
        leaf.comm = p.comm[: COMM_LEN - 1]
        leaf.filename = (p.exe or b"")[: PATH_LEN - 1]
        try:
            table[table.Key(p.pid)] = leaf
        except Exception:  # the table is full: this process stays untracked (its records say so)
            full += 1
            continue
        seeded.append(p)
    return seeded, full


def _seed_listeners(table: Any, procs: dict[int, procfs.Process]) -> int:
    found = procfs.listeners()
    owners = procfs.socket_owners({li.inode for li in found})
    n = 0
    for li in found:
        pid = owners.get(li.inode)
        p = procs.get(pid) if pid else None
        if p is None:
            continue
        leaf = table.Leaf()
        leaf.pid = leaf.tid = p.pid
        leaf.ppid, leaf.uid, leaf.gid = p.ppid, p.uid, p.gid
        leaf.comm = p.comm[: COMM_LEN - 1]
        leaf.cgroup_id = cgroup_id_of(p.pid)
        leaf.start_ns = start_ns_of_ticks(p.starttime)
        parent = procs.get(p.ppid)
        if parent is not None:
            leaf.parent_start_ns = start_ns_of_ticks(parent.starttime)
        else:
            leaf.flags = TASK_PARENT_UNKNOWN
        table[table.Key(li.family << 16 | li.port)] = leaf
        n += 1
    return n


def cgroup_id_of(pid: int) -> int:
    """The cgroup v2 id of a process: the inode of its directory in the cgroup2 hierarchy."""
    root = procfs.cgroup2_mount()
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        if line.startswith("0::") and root is not None:
            with contextlib.suppress(OSError):
                return os.stat(root / line[3:].lstrip("/")).st_ino
    return 0
