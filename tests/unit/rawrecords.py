"""Build raw records the way bpf/collector.bpf.c lays them out (through the mirror in producer/events.py,
which tests/integration/test_layout.py checks against the compiler)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from producer import events


def _common(
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
) -> tuple[Any, ...]:
    return (
        boot_ns,
        seq,
        events.EVENT_TYPE_IDS[type_name] if type_id is None else type_id,
        cpu,
        cgroup_id,
        pid,
        pid if tid is None else tid,
        ppid,
        uid,
        gid,
        task_flags,
        comm.ljust(16, b"\0")[:16],
    )


def exec_record(
    *,
    retval: int = 0,
    flags: int = 0,
    filename: bytes = b"/bin/sh",
    argv: list[bytes] | None = None,
    args_count: int | None = None,
    args_size: int | None = None,
    pad: int = 4,
    **common: Any,
) -> bytes:
    argv = [b"/bin/sh", b"-c", b"exit 0"] if argv is None else argv
    blob = b"".join(a + b"\0" for a in argv)
    fixed = events.PROCESS_EXEC.struct.pack(
        *_common("process_exec", **common),
        retval,
        flags,
        len(argv) if args_count is None else args_count,
        len(blob) if args_size is None else args_size,
        0,
        filename.ljust(256, b"\0")[:256],
    )
    # perf pads raw samples to 8 bytes; the decoder must rely on args_size, not on the length
    return fixed + blob + b"\0" * pad


def exit_record(
    *,
    start_ns: int = 1_000_000_000,
    exit_code: int = 0,
    signal: int = 0,
    flags: int = events.EXIT_CODE_KNOWN | events.EXIT_START_KNOWN,
    **common: Any,
) -> bytes:
    return events.PROCESS_EXIT.struct.pack(
        *_common("process_exit", **common), start_ns, exit_code, signal, flags, 0
    )


def fork_record(*, child_pid: int = 4243, **common: Any) -> bytes:
    return events.PROCESS_FORK.struct.pack(*_common("process_fork", **common), child_pid, 0)


def open_record(
    *,
    path: bytes = b"/etc/passwd",
    open_flags: int = 0,
    mode: int = 0,
    ret: int = 3,
    syscall: int = 0,
    flags: int = 0,
    path_size: int | None = None,
    **common: Any,
) -> bytes:
    blob = path + b"\0"
    return (
        events.FILE_OPEN.struct.pack(
            *_common("file_open", **common),
            open_flags,
            mode,
            ret,
            syscall,
            len(blob) if path_size is None else path_size,
            flags,
        )
        + blob
        + b"\0" * 3
    )


def tcp_record(
    type_name: str = "tcp_connect",
    *,
    family: int = events.AF_INET,
    saddr: str = "10.0.0.1",
    daddr: str = "10.0.0.2",
    sport: int = 40000,
    dport: int = 443,
    direction: int = 1,
    established_ns: int = 4_000_000_000,
    **common: Any,
) -> bytes:
    def raw(addr: str) -> bytes:
        return ipaddress.ip_address(addr).packed.ljust(16, b"\0")

    return events.TCP.struct.pack(
        *_common(type_name, **common),
        established_ns,
        family,
        sport,
        dport,
        direction,
        0,
        raw(saddr),
        raw(daddr),
    )


# One builder per event type: what the record-level tests iterate over.
BUILDERS: dict[str, Callable[..., bytes]] = {
    "process_exec": exec_record,
    "process_exit": exit_record,
    "process_fork": fork_record,
    "file_open": open_record,
    "tcp_connect": lambda **kw: tcp_record("tcp_connect", **kw),
    "tcp_accept": lambda **kw: tcp_record("tcp_accept", **kw),
    "tcp_close": lambda **kw: tcp_record("tcp_close", **kw),
}
