"""Reading the kernel's process table (bpf/collector.bpf.c ekp_procs) from a reader: records/ancestry.py.

Readers inherit the supervisor's map fds over fork, so every reader, and a restarted one, reads the
same table. A lookup is one bpf() system call; it runs only when events.process_exec.ancestors asks.
"""

from __future__ import annotations

from typing import Any

from ..records.abi import PROC_PARENT_UNKNOWN
from ..records.ancestry import Lookup, Proc
from ..records.common import clean_utf8


def lookup(table: Any) -> Lookup:
    """pid -> its table entry (None when absent), for records/ancestry.walk."""
    key_type = table.Key

    def get(pid: int) -> Proc | None:
        try:
            e = table[key_type(pid)]
        except KeyError:
            return None
        filename, escaped = clean_utf8(bytes(e.filename)) if e.filename else (None, False)
        parent_start = 0 if e.flags & PROC_PARENT_UNKNOWN else int(e.parent_start_ns)
        return Proc(int(e.start_ns), parent_start, int(e.ppid), filename, escaped)

    return get
