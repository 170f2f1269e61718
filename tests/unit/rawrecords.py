"""Build raw process_exec records the way bpf/process_exec.bpf.c lays them out."""

from __future__ import annotations

from producer import events


def exec_record(
    *,
    seq: int = 7,
    cpu: int = 0,
    pid: int = 4242,
    ppid: int = 1,
    uid: int = 1000,
    gid: int = 1000,
    retval: int = 0,
    flags: int = 0,
    comm: bytes = b"sh",
    filename: bytes = b"/bin/sh",
    argv: list[bytes] | None = None,
    boot_ns: int = 5_000_000_000,
    cgroup_id: int = 1,
    type_id: int = 0,
    args_count: int | None = None,
    args_size: int | None = None,
    pad: int = 4,
) -> bytes:
    argv = [b"/bin/sh", b"-c", b"exit 0"] if argv is None else argv
    blob = b"".join(a + b"\0" for a in argv)
    fixed = events.PROCESS_EXEC.struct.pack(
        boot_ns,
        seq,
        type_id,
        cpu,
        cgroup_id,
        pid,
        ppid,
        uid,
        gid,
        retval,
        flags,
        len(argv) if args_count is None else args_count,
        len(blob) if args_size is None else args_size,
        comm.ljust(16, b"\0")[:16],
        filename.ljust(256, b"\0")[:256],
    )
    # perf pads raw samples to 8 bytes; the decoder must rely on args_size, not on the length
    return fixed + blob + b"\0" * pad
