"""What the benchmark reads from /proc: CPU time and peak RSS of a process tree, machine-wide
busy time, and the offsets that turn kernel clocks into wall time.

/proc rather than cgroups: it works the same on a cgroup v1 host, inside a container and for
processes the benchmark did not fork itself (a collector's readers), and it needs no set-up
that could leak into the rest of the machine.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    cpu_s: float  # user + sys of every live process of the tree, plus what they reaped
    hwm_kb: int  # sum of VmHWM: forked children share pages, so this is an upper bound


def _stat_fields(pid: int) -> list[bytes] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: fields start after the last ')'
    return stat[stat.rfind(b")") + 2 :].split()


def tree(roots: list[int]) -> list[int]:
    """roots and all their live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            f = _stat_fields(int(entry.name))
            if f is not None:
                children.setdefault(int(f[1]), []).append(int(entry.name))
    out: list[int] = []
    todo = [p for p in roots if p > 0]
    while todo:
        pid = todo.pop()
        if pid not in out:
            out.append(pid)
            todo.extend(children.get(pid, []))
    return out


def usage(roots: list[int]) -> Usage:
    cpu_ticks = 0
    hwm = 0
    for pid in tree(roots):
        f = _stat_fields(pid)
        if f is None:
            continue
        # utime, stime, and cutime/cstime: a reaped child has left the tree but not the account
        cpu_ticks += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
        hwm += _vm_hwm_kb(pid)
    return Usage(cpu_ticks / CLK_TCK, hwm)


def _vm_hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def process_cpu_s(pid: int) -> float:
    f = _stat_fields(pid)
    return 0.0 if f is None else (int(f[11]) + int(f[12])) / CLK_TCK


@dataclass(frozen=True)
class MachineTime:
    busy_s: float  # CPU-seconds any process or interrupt used, all CPUs
    steal_s: float  # taken by the hypervisor: a noisy neighbour


def machine_time() -> MachineTime:
    with open("/proc/stat", encoding="ascii") as f:
        # cpu user nice system idle iowait irq softirq steal (guest time is inside user)
        v = [int(x) for x in f.readline().split()[1:9]]
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    return MachineTime(busy / CLK_TCK, v[7] / CLK_TCK)


@dataclass(frozen=True)
class Clocks:
    """wall ns = kernel clock ns + offset; each offset is the best of a few bracketed readings."""

    boot_to_wall_ns: int  # bpf_ktime_get_boot_ns()
    mono_to_wall_ns: int  # bpf_ktime_get_ns(), bpftrace's nsecs

    @classmethod
    def measure(cls) -> Clocks:
        return cls(_offset(time.CLOCK_BOOTTIME), _offset(time.CLOCK_MONOTONIC))

    def wall_ns(self, kernel_ns: int, clock: str) -> int:
        return kernel_ns + (self.boot_to_wall_ns if clock == "boot" else self.mono_to_wall_ns)


def _offset(clock: int) -> int:
    best: tuple[int, int] | None = None
    for _ in range(7):
        a = time.clock_gettime_ns(clock)
        w = time.time_ns()
        b = time.clock_gettime_ns(clock)
        # the narrowest bracket is the reading least disturbed by preemption
        if best is None or b - a < best[0]:
            best = (b - a, w - (a + b) // 2)
    assert best is not None
    return best[1]
