"""What happened before the programs attached, from /proc into their maps: parents and listeners.

The programs learn parents (sched_process_fork) and listening sockets (listen()) as they happen;
without this seed every process older than the collector would have no ppid, and connections
accepted by an older listener no process.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..config import Config
from ..records import catalog
from . import procfs
from .build import BpfModule


def seed(module: BpfModule, cfg: Config) -> dict[str, int]:
    """Fill the maps; returns how many entries each got (for the start-up log).

    Parents always (every record's ppid); the rest as the enabled event types ask (catalog: `seeds`).
    """
    counts = {"parents": _fill(module.table("ekp_parents"), procfs.parents())}
    wanted = {s for e in catalog.enabled(cfg) for s in e.seeds}
    if "listeners" in wanted:
        counts["listeners"] = _seed_listeners(module.table("ekp_listeners"))
    return counts


def _seed_listeners(table: Any) -> int:
    found = procfs.listeners()
    owners = procfs.socket_owners({li.inode for li in found})
    n = 0
    for li in found:
        pid = owners.get(li.inode)
        info = procfs.info(pid) if pid else None
        if info is None:
            continue
        leaf = table.Leaf()
        leaf.pid = leaf.tid = info.pid
        leaf.ppid, leaf.uid, leaf.gid = info.ppid, info.uid, info.gid
        leaf.comm = info.comm.encode()[:15]
        leaf.cgroup_id = _cgroup_id_of(pid) if pid else 0
        table[table.Key(li.family << 16 | li.port)] = leaf
        n += 1
    return n


def _fill(table: Any, pairs: Iterable[tuple[int, int]]) -> int:
    n = 0
    for key, value in pairs:
        try:
            table[table.Key(key)] = table.Leaf(value)
            n += 1
        except Exception:  # the LRU map is full or the key vanished: not worth failing a start
            break
    return n


def _cgroup_id_of(pid: int) -> int:
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
