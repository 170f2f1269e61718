"""filters.* and file_open's path prefixes -> the kernel's filter maps (bpf/collector.bpf.c).

Each list is a hash map of value -> allow/deny mark; a flags word says which allow lists exist.
The map sizes and the prefix limits are events.h's (records/abi.py mirrors them; the config
refuses longer lists, and tests/unit/test_abi.py holds the three together).
"""

from __future__ import annotations

import contextlib
import ctypes as ct
from collections.abc import Iterable
from typing import Any

from ..config import Config
from ..errors import ConfigError
from ..records import abi, catalog
from ..records.containers import ContainerResolver
from .build import BpfModule

_ALLOW_BITS = {
    "comm": abi.FILTER_COMM_ALLOW,
    "uid": abi.FILTER_UID_ALLOW,
    "pid": abi.FILTER_PID_ALLOW,
    "cgroup": abi.FILTER_CGROUP_ALLOW,
}
_FILE_OPEN = catalog.BY_NAME["file_open"]


class Filters:
    def __init__(self, module: BpfModule) -> None:
        self.module = module
        self._pids = module.table("ekp_filter_pid")

    def apply(self, cfg: Config, excluded_pids: set[int], resolver: ContainerResolver) -> dict[str, int]:
        """Load the filters into the kernel; returns the entries per list (for the start-up log)."""
        f = cfg.filters
        flags = 0
        sizes: dict[str, int] = {}
        cgroup_allow = [_cgroup_id(v, resolver, "allow") for v in f.cgroup.allow]
        cgroup_deny = [_cgroup_id(v, resolver, "deny") for v in f.cgroup.deny]
        lists: dict[str, tuple[Iterable[Any], Iterable[Any]]] = {
            "comm": (f.comm.allow, f.comm.deny),
            "uid": (f.uid.allow, f.uid.deny),
            "pid": (f.pid.allow, (*f.pid.deny, *sorted(excluded_pids - set(f.pid.allow)))),
            "cgroup": (cgroup_allow, cgroup_deny),
        }
        for name, (allow, deny) in lists.items():
            table = self.module.table(f"ekp_filter_{name}")
            table.clear()
            entries = [(v, abi.FILTER_ALLOW) for v in allow] + [(v, abi.FILTER_DENY) for v in deny]
            for value, action in entries:
                table[_filter_key(table, name, value)] = ct.c_uint8(action)
            if list(allow):
                flags |= _ALLOW_BITS[name]
            sizes[name] = len(entries)
        flags, prefixes = self._path_prefixes(cfg, flags)
        cfg_table = self.module.table("ekp_filter_cfg")
        leaf = cfg_table.Leaf()
        leaf.flags = flags
        leaf.prefixes = prefixes
        cfg_table[cfg_table.Key(0)] = leaf
        return sizes

    def _path_prefixes(self, cfg: Config, flags: int) -> tuple[int, int]:
        """file_open's path prefixes: (length, bytes) keys, and the distinct lengths to look up."""
        section = _FILE_OPEN.section(cfg)
        prefixes = section.path_prefixes
        if prefixes.allow:
            flags |= abi.FILTER_PATH_ALLOW
        if not section.enabled:
            return flags, 0
        lengths = sorted({len(p.encode()) for p in (*prefixes.allow, *prefixes.deny)})
        table = self.module.table("ekp_filter_prefix")
        marked = [(p, abi.FILTER_ALLOW) for p in prefixes.allow] + [
            (p, abi.FILTER_DENY) for p in prefixes.deny
        ]
        for p, action in marked:
            key = table.Key()
            key.len = len(p.encode())
            key.bytes = p.encode()
            table[key] = ct.c_uint8(action)
        lens = self.module.table("ekp_filter_prefix_len")
        for i, n in enumerate(lengths):
            lens[lens.Key(i)] = ct.c_uint32(n)
        return flags, len(lengths)

    def exclude_pid(self, pid: int) -> None:
        """Deny one more pid (a reader started after the filters were applied)."""
        self._pids[self._pids.Key(pid)] = ct.c_uint8(abi.FILTER_DENY)

    def include_pid(self, pid: int) -> None:
        """Undo exclude_pid: the pid is gone and may be reused by a process we must watch."""
        with contextlib.suppress(KeyError):
            del self._pids[self._pids.Key(pid)]


def _filter_key(table: Any, name: str, value: Any) -> Any:
    if name == "comm":
        key = table.Key()
        key.comm = value.encode()
        return key
    return table.Key(value)


def _cgroup_id(value: int | str, resolver: ContainerResolver, which: str) -> int:
    if isinstance(value, int):
        return value
    cid = resolver.path_to_id(value)
    if cid is None:
        raise ConfigError(
            f"config: filters.cgroup.{which}: no cgroup at {value!r} (paths are relative to "
            f"{resolver.root or 'the cgroup2 mount'})"
        )
    return cid
