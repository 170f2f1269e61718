"""The syscall_counts family: an aggregate, read from a BPF map instead of a perf buffer.

The kernel keeps cumulative per-CPU counts per (cgroup, syscall) in the percpu hash
ekp_syscall_counts (key: struct ekp_syscall_key). This module reads that map and builds the records
of schemas/syscall_counts.avsc; publishing them, and their ledger in syscalls, is the supervisor's
(producer/ledger/aggregate.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MAP = "ekp_syscall_counts"

# (cgroup id, syscall nr) -> cumulative count, all CPUs
Reading = dict[tuple[int, int], int]


def syscall_names(header: Path = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")) -> dict[int, str]:
    """Syscall numbers -> names from the C library headers, when they are installed."""
    try:
        text = header.read_text()
    except OSError:
        return {}
    return {int(nr): name for name, nr in re.findall(r"#define __NR_(\w+) (\d+)", text)}


def read(table: Any) -> Reading:
    """The map's cumulative counts, summed over CPUs."""
    return {(int(key.cgroup_id), int(key.nr)): sum(int(v) for v in per_cpu) for key, per_cpu in table.items()}


def record(
    *,
    host: str,
    boot_id: str,
    cgroup_id: int,
    container_id: str | None,
    interval: tuple[int, int],
    counts: Iterable[tuple[int, int]],
    names: dict[int, str],
    k8s: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One cgroup's syscalls of one interval (µs bounds), as schemas/syscall_counts.avsc has it."""
    items = sorted(counts)
    return {
        "timestamp": interval[1],
        "host": host,
        "boot_id": boot_id,
        "cgroup_id": cgroup_id,
        "container_id": container_id,
        "interval_start": interval[0],
        "interval_end": interval[1],
        "syscalls": [{"nr": nr, "name": names.get(nr, f"sys_{nr}"), "count": c} for nr, c in items],
        "total": sum(c for _, c in items),
        "k8s": k8s,
    }
