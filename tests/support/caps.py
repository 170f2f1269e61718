"""Capabilities as /proc shows them: what the least-privilege tests confine the collector to."""

from __future__ import annotations

from pathlib import Path

CAP_BITS = {"BPF": 39, "PERFMON": 38, "IPC_LOCK": 14}


def cap_sets(pid: int) -> dict[str, int]:
    """CapInh, CapPrm, CapEff, CapBnd, CapAmb of a process, as bit masks."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: int(v, 16) for k, v in (ln.split(":\t") for ln in lines if ln.startswith("Cap"))}
