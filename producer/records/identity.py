"""Process identity: the id that joins every record a program image produced, across pid reuse.

    process_id = "<boot>-<start>-<pid>"      e.g. "4f1c2a9e-1a2b3c4d5e6-4242"

- boot: the first 8 hex digits of /proc/sys/kernel/random/boot_id, so ids of one host never repeat
  across reboots (and practically never across hosts);
- start: when the image started, in CLOCK_BOOTTIME nanoseconds, as hex: its exec, its fork (a child
  runs its parent's image until it execs), or /proc/<pid>/stat's starttime (clock ticks, so 10 ms
  resolution) for a process that was alive before the collector;
- pid: the process id (tgid), decimal.

The kernel keeps (pid, start) in the process table (bpf/collector.bpf.c ekp_procs) and stamps it, with
the parent's, on every record, so every reader computes the same id from the record alone, and a
restarted reader the same ids as its predecessor. A consumer can compute the id of a live process
from /proc: `<boot>-<starttime * 1e9 / CLK_TCK as hex>-<pid>`, valid for processes that have not
exec'd since the collector started.
"""

from __future__ import annotations

import os

NS_PER_TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def boot_tag(boot_id: str) -> str:
    """The boot part of every process id of this boot."""
    return boot_id.replace("-", "")[:8]


def process_id(boot: str, start_ns: int, pid: int) -> str:
    return f"{boot}-{start_ns:x}-{pid}"


def start_ns_of_ticks(ticks: int) -> int:
    """/proc/<pid>/stat's starttime (clock ticks since boot) as the table's start_ns."""
    return ticks * NS_PER_TICK
