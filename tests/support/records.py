"""Raw records as bpf/collector.bpf.c lays them out: packed through the mirror in producer/records/
(which tests/integration/test_layout.py checks against the compiler), one builder per record layout.
BUILDERS has one per stream event type of the catalog."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from typing import Any

from producer import config
from producer.records import abi, catalog, file_open, process, process_exec, tcp
from producer.records.abi import RecordLayout

# The common fields at the largest values the kernel can give them (u32 ids, pids at pid_max, the
# 64-bit counters at the top of the Avro long).
BOUNDARY: dict[str, int] = {
    "uid": 0xFFFFFFFF,
    "gid": 0xFFFFFFFF,
    "pid": abi.PID_MAX_LIMIT,
    "tid": abi.PID_MAX_LIMIT,
    "ppid": abi.PID_MAX_LIMIT,
    "seq": 2**63 - 1,
    "cgroup_id": 2**63 - 1,
    "boot_ns": 2**62,
    "start_ns": 2**62,  # an image may start in the very nanosecond of its record
    "parent_start_ns": 2**62,
}
# The decode context of the defaults (max_args 32, max_arg_len 128, failed execs not included).
CTX = catalog.decode_context(config.validate({}), "node-1", "b00t")


def common(
    type_name: str,
    *,
    seq: int = 7,
    cpu: int = 0,
    boot_ns: int = 5_000_000_000,
    cgroup_id: int = 1,
    pid: int = 4242,
    tid: int | None = None,
    ppid: int = 1,
    uid: int = 1000,
    gid: int = 1000,
    task_flags: int = 0,
    comm: bytes = b"sh",
    type_id: int | None = None,
    start_ns: int | None = None,
    parent_start_ns: int | None = None,
) -> dict[str, Any]:
    """The header and task of a record, by C field path (an identity by default: start_ns and
    parent_start_ns before the event's boot_ns)."""
    start = max(1, boot_ns // 2) if start_ns is None else start_ns
    parent_start = start // 2 if parent_start_ns is None else parent_start_ns
    return {
        "hdr.boot_ns": boot_ns,
        "hdr.seq": seq,
        "hdr.type": catalog.BY_NAME[type_name].id if type_id is None else type_id,
        "hdr.cpu": cpu,
        "task.cgroup_id": cgroup_id,
        "task.start_ns": start,
        "task.parent_start_ns": parent_start,
        "task.pid": pid,
        "task.tid": pid if tid is None else tid,
        "task.ppid": ppid,
        "task.uid": uid,
        "task.gid": gid,
        "task.flags": task_flags,
        "task.comm": comm,
    }


def exec_record(
    *,
    type_name: str = "process_exec",
    retval: int = 0,
    flags: int = process_exec.EXEC_PREV_KNOWN | process_exec.EXEC_PARENT_KNOWN,
    filename: bytes = b"/bin/sh",
    argv: list[bytes] | None = None,
    args_count: int | None = None,
    args_size: int | None = None,
    pad: int = 4,
    prev_start_ns: int | None = None,
    parent_filename: bytes = b"/usr/bin/bash",
    parent_comm: bytes = b"bash",
    **kw: Any,
) -> bytes:
    """flags: by default the replaced image and the parent's program are known."""
    argv = [b"/bin/sh", b"-c", b"exit 0"] if argv is None else argv
    blob = b"".join(a + b"\0" for a in argv)
    task = common(type_name, **kw)
    own = {
        "prev_start_ns": max(1, task["task.start_ns"] // 2) if prev_start_ns is None else prev_start_ns,
        "parent_filename": parent_filename,
        "parent_comm": parent_comm,
        "retval": retval,
        "flags": flags,
        "args_count": len(argv) if args_count is None else args_count,
        "args_size": len(blob) if args_size is None else args_size,
        "filename": filename,
    }
    # perf pads raw samples to 8 bytes; the decoder must rely on args_size, not on the length
    return process_exec.EXEC.pack({**task, **own}) + blob + b"\0" * pad


def exit_record(
    *,
    type_name: str = "process_exit",
    fork_ns: int | None = None,
    exit_code: int = 0,
    signal: int = 0,
    flags: int = process.EXIT_CODE_KNOWN | process.EXIT_START_KNOWN,
    filename: bytes = b"/bin/sh",
    **kw: Any,
) -> bytes:
    task = common(type_name, **kw)
    fork = task["task.start_ns"] if fork_ns is None else fork_ns
    own = {"fork_ns": fork, "exit_code": exit_code, "signal": signal, "flags": flags, "filename": filename}
    return process.EXIT.pack({**task, **own})


def fork_record(
    *,
    type_name: str = "process_fork",
    child_pid: int = 4243,
    child_start_ns: int | None = None,
    flags: int = 0,
    filename: bytes = b"/usr/bin/bash",
    **kw: Any,
) -> bytes:
    task = common(type_name, **kw)
    child_start = task["hdr.boot_ns"] if child_start_ns is None else child_start_ns
    own = {"child_pid": child_pid, "child_start_ns": child_start, "flags": flags, "filename": filename}
    return process.FORK.pack({**task, **own})


def processes_record(*, view: str = "process_exec", **kw: Any) -> bytes:
    """A processes record: an exec, fork or exit record, its type EVENT_PROCESSES | source << VIEW_SHIFT."""
    source = catalog.BY_NAME[view].id
    kw.setdefault("type_id", catalog.BY_NAME["processes"].id | source << abi.VIEW_SHIFT)
    kw.pop("type_name", None)
    build = {"process_exec": exec_record, "process_fork": fork_record, "process_exit": exit_record}[view]
    return build(type_name=view, **kw)


def open_record(
    *,
    type_name: str = "file_open",
    path: bytes = b"/etc/passwd",
    open_flags: int = 0,
    mode: int = 0,
    ret: int = 3,
    syscall: int = 0,
    flags: int = 0,
    path_size: int | None = None,
    **kw: Any,
) -> bytes:
    blob = path + b"\0"
    own = {
        "open_flags": open_flags,
        "mode": mode,
        "ret": ret,
        "syscall": syscall,
        "path_size": len(blob) if path_size is None else path_size,
        "flags": flags,
    }
    return file_open.FILE_OPEN.pack({**common(type_name, **kw), **own}) + blob + b"\0" * 3


def tcp_record(
    type_name: str = "tcp_connect",
    *,
    family: int = tcp.AF_INET,
    saddr: str | bytes = "10.0.0.1",
    daddr: str | bytes = "10.0.0.2",
    sport: int = 40000,
    dport: int = 443,
    direction: int = tcp.TCP_OUTBOUND,
    established_ns: int = 4_000_000_000,
    **kw: Any,
) -> bytes:
    """An address as text, or its 16 bytes as they are (whatever the family)."""

    def raw(addr: str | bytes) -> bytes:
        return (addr if isinstance(addr, bytes) else ipaddress.ip_address(addr).packed).ljust(16, b"\0")

    own = {
        "established_ns": established_ns,
        "family": family,
        "sport": sport,
        "dport": dport,
        "direction": direction,
        "saddr": raw(saddr),
        "daddr": raw(daddr),
    }
    return tcp.TCP.pack({**common(type_name, **kw), **own})


_BY_LAYOUT: dict[RecordLayout, Callable[..., bytes]] = {
    process_exec.EXEC: exec_record,
    process.EXIT: exit_record,
    process.FORK: fork_record,
    file_open.FILE_OPEN: open_record,
    tcp.TCP: tcp_record,
}
# One builder per stream event type: what the record-level tests iterate over. A new record layout
# needs its builder above (tests/unit/test_catalog.py fails until it has one).
BUILDERS: dict[str, Callable[..., bytes]] = {
    e.name: functools.partial(_BY_LAYOUT[e.layout], type_name=e.name)
    for e in catalog.STREAMS
    if e.layout in _BY_LAYOUT and e.buffer is catalog.Buffer.PERF
}
BUILDERS["processes"] = processes_record
