"""Which CPUs there are, how they are split among readers, and which boot this is."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..config import Config
from ..errors import ConfigError


def online_cpus() -> list[int]:
    from bcc.utils import get_online_cpus

    return list(get_online_cpus())


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def cpu_groups(cfg: Config, cpus: Sequence[int]) -> list[tuple[int, ...]]:
    """Split the online CPUs into reader groups as configured."""
    r = cfg.readers
    if r.cpu_groups is not None:
        missing = sorted(set(cpus) - {c for g in r.cpu_groups for c in g})
        offline = sorted({c for g in r.cpu_groups for c in g} - set(cpus))
        if offline:
            raise ConfigError(
                f"config: readers.cpu_groups: CPUs {offline} are not online (online: {list(cpus)})"
            )
        if missing:
            raise ConfigError(
                f"config: readers.cpu_groups: online CPUs {missing} are in no group; "
                "their events would never be read"
            )
        return [tuple(g) for g in r.cpu_groups]
    n = min(len(cpus), r.max_auto) if r.count == "auto" else int(r.count)
    n = max(1, min(n, len(cpus)))
    groups: list[list[int]] = [[] for _ in range(n)]
    for i, cpu in enumerate(sorted(cpus)):
        groups[i % n].append(cpu)
    return [tuple(g) for g in groups]
