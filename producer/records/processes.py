"""The processes family: the process table on Kafka, <prefix>.processes, keyed by process_id.

An entry is made from a kernel record: every successful exec, fork and exit record is submitted a
second time, to one ring buffer shared by all CPUs (bpf/collector.bpf.c: ekp_processes_view), with
its header's type set to EVENT_PROCESSES | source type << VIEW_SHIFT. One ring, one reader: the
entries of an image reach Kafka in the order the kernel made them, so on a compacted topic the exit
of an image is never overtaken by its exec. Processes alive when the collector started are entries
too (`seeded`, from /proc: `seeded_record`).

Each entry is keyed by its image's process_id (records/identity.py), so the compacted topic keeps
the latest state of every image, and parent_process_id links each one to the image that forked it:
a consumer rebuilds any record's ancestry to pid 1 from this topic alone.
"""

from __future__ import annotations

from struct import Struct
from typing import Any, NamedTuple, Protocol

from ..errors import DecodeError
from . import process, process_exec
from .abi import COMMON, VIEW_SHIFT
from .avro import (
    BOOLEAN,
    BRANCH1,
    EMPTY_ARRAY,
    NULL,
    ContainerOf,
    Encoder,
    Static,
    long_,
    opt_id,
    opt_long,
    opt_string,
    string_,
)
from .common import Common, DecodeContext, clean_utf8
from .identity import boot_tag, process_id, start_ns_of_ticks
from .process import Exit, Fork, signal_name
from .process_exec import Exec, ExecOptions

_EXEC, _EXIT, _FORK = 0, 1, 2  # the source record's event type: EKP_EVENT_PROCESS_{EXEC,EXIT,FORK}
KINDS = {_EXEC: "exec", _FORK: "fork", _EXIT: "exit"}
_TYPE = Struct("<I")
_TYPE_OFFSET = COMMON.offset("hdr.type")
# The fields of a fork record that name the child (its identity is the entry's key)
_CHILD = Struct("<QI")
_CHILD_OFFSET = process.FORK.offset("child_start_ns")
_TASK = Struct("<QQQ")  # task.cgroup_id, start_ns, parent_start_ns
_TASK_OFFSET = COMMON.offset("task.cgroup_id")
_PID = Struct("<I")
_PID_OFFSET = COMMON.offset("task.pid")


class View(NamedTuple):
    source: int  # _EXEC, _FORK or _EXIT
    record: Exec | Fork | Exit


def parse(raw: bytes, cpu: int, type_id: int, opts: ExecOptions | None = None) -> View:
    """A processes record: which kernel record it was made from, parsed as that record."""
    if len(raw) < _TYPE_OFFSET + 4:
        raise DecodeError(f"truncated: {len(raw)} bytes")
    (typ,) = _TYPE.unpack_from(raw, _TYPE_OFFSET)
    if typ & ((1 << VIEW_SHIFT) - 1) != type_id:
        raise DecodeError(f"type {typ} in the processes buffer")
    source = typ >> VIEW_SHIFT
    rec: Exec | Fork | Exit
    if source == _EXEC:
        rec = process_exec.parse_exec(raw, cpu, typ, opts or ExecOptions())
        if rec.retval != 0:
            raise DecodeError("a failed exec starts no image")
    elif source == _FORK:
        rec = process.parse_fork(raw, cpu, typ)
        if rec.child_start_ns is None:
            raise DecodeError("a fork whose child was not tracked")
    elif source == _EXIT:
        rec = process.parse_exit(raw, cpu, typ)
    else:
        raise DecodeError(f"processes record made from type {source}")
    if rec.common.start_ns is None or rec.common.pid is None:
        raise DecodeError("a processes record of an untracked process")
    return View(source, rec)


def key(raw: bytes, boot: str) -> bytes | None:
    """The message key of a raw processes record (its process_id), or None if it cannot say."""
    if len(raw) < _CHILD_OFFSET + _CHILD.size:
        return None
    (typ,) = _TYPE.unpack_from(raw, _TYPE_OFFSET)
    if typ >> VIEW_SHIFT == _FORK:
        start, pid = _CHILD.unpack_from(raw, _CHILD_OFFSET)
    else:
        _cg, start, _pstart = _TASK.unpack_from(raw, _TASK_OFFSET)
        (pid,) = _PID.unpack_from(raw, _PID_OFFSET)
    return process_id(boot, start, pid).encode()


def decode(raw: bytes, cpu: int, type_id: int, ctx: DecodeContext, boot_to_wall_ns: int) -> dict[str, Any]:
    """The reference decoder: a raw processes record -> the Process dict fastavro encodes."""
    source, r = parse(raw, cpu, type_id, ctx.option("process_exec", ExecOptions))
    c = r.common
    boot = ctx.boot
    ts = (c.boot_ns + boot_to_wall_ns) // 1000
    rec: dict[str, Any] = {
        "timestamp": ts,
        "boot_ns": c.boot_ns,
        "host": ctx.host,
        "boot_id": ctx.boot_id,
        "cpu": c.cpu,
        "seq": c.seq,
        "kind": KINDS[source],
        "previous_process_id": None,
        "uid": c.uid,
        "gid": c.gid,
        "comm": _text(c.comm),
        "argv": [],
        "cgroup_id": c.cgroup_id,
        "container_id": None,
        "k8s": None,
        "seeded": False,
        "exit_time": None,
        "exit_code": None,
        "signal": None,
        "signal_name": None,
    }
    assert c.pid is not None and c.start_ns is not None
    if isinstance(r, Fork):
        assert r.child_start_ns is not None
        rec.update(
            process_id=process_id(boot, r.child_start_ns, r.child_pid),
            parent_process_id=process_id(boot, c.start_ns, c.pid),
            pid=r.child_pid,
            ppid=c.pid,
            filename=_text(r.filename),
            start_time=(r.child_start_ns + boot_to_wall_ns) // 1000,
            strings_escaped=r.escaped,
        )
        return rec
    rec.update(
        process_id=process_id(boot, c.start_ns, c.pid),
        parent_process_id=(
            None
            if c.ppid is None or c.parent_start_ns is None
            else process_id(boot, c.parent_start_ns, c.ppid)
        ),
        pid=c.pid,
        ppid=c.ppid,
        start_time=(c.start_ns + boot_to_wall_ns) // 1000,
    )
    if isinstance(r, Exec):
        rec.update(
            previous_process_id=(
                None if r.previous_start_ns is None else process_id(boot, r.previous_start_ns, c.pid)
            ),
            filename=r.filename.decode(),
            argv=[a.decode() for a in r.argv],
            strings_escaped=r.escaped,
        )
    else:
        rec.update(
            filename=_text(r.filename),
            exit_time=ts,
            exit_code=r.exit_code,
            signal=r.signal,
            signal_name=None if r.signal is None else signal_name(r.signal),
            strings_escaped=r.escaped,
        )
    return rec


def _text(b: bytes | None) -> str | None:
    return None if b is None else b.decode()


_KIND = {k: string_(v.encode()) for k, v in KINDS.items()}
_NO_EXIT = NULL * 4  # exit_time, exit_code, signal, signal_name


def encoder(static: Static, type_id: int) -> Encoder:
    """A raw processes record -> the Process record's Avro body, byte for byte `decode`'s."""
    opts = static.ctx.option("process_exec", ExecOptions)
    boot = static.boot

    def encode(raw: bytes, cpu: int, boot_to_wall_ns: int, container_of: ContainerOf) -> tuple[bytes, bool]:
        source, r = parse(raw, cpu, type_id, opts)
        c: Common = r.common
        ts = long_((c.boot_ns + boot_to_wall_ns) // 1000)
        out = [
            static.prefix,
            ts,
            long_(c.boot_ns),
            static.host_boot,
            long_(c.cpu),
            long_(c.seq),
            _KIND[source],
        ]
        container = static.containers.get(c.cgroup_id) or static.container(c.cgroup_id, container_of)
        who = [opt_long(c.uid), opt_long(c.gid), opt_string(c.comm)]
        if isinstance(r, Fork):
            out += [
                string_(process_id(boot, r.child_start_ns or 0, r.child_pid).encode()),
                opt_id(boot, c.start_ns, c.pid),
                NULL,
                long_(r.child_pid),
                opt_long(c.pid),
                *who,
                opt_string(r.filename),
                EMPTY_ARRAY,
                long_(((r.child_start_ns or 0) + boot_to_wall_ns) // 1000),
            ]
            tail_exit = _NO_EXIT
        else:
            assert c.pid is not None and c.start_ns is not None
            out += [
                string_(process_id(boot, c.start_ns, c.pid).encode()),
                opt_id(boot, c.parent_start_ns, c.ppid),
                opt_id(boot, r.previous_start_ns, c.pid) if isinstance(r, Exec) else NULL,
                long_(c.pid),
                opt_long(c.ppid),
                *who,
            ]
            if isinstance(r, Exec):
                out.append(BRANCH1 + string_(r.filename))
                if r.argv:
                    out.append(long_(len(r.argv)))
                    out += [string_(a) for a in r.argv]
                out.append(EMPTY_ARRAY)
                tail_exit = _NO_EXIT
            else:
                out += [opt_string(r.filename), EMPTY_ARRAY]
                name = None if r.signal is None else signal_name(r.signal)
                tail_exit = (
                    BRANCH1
                    + ts
                    + opt_long(r.exit_code)
                    + opt_long(r.signal)
                    + opt_string(None if name is None else name.encode())
                )
            out.append(long_((c.start_ns + boot_to_wall_ns) // 1000))
        out += [
            long_(c.cgroup_id),
            container,
            static.k8s_encoded.get(c.cgroup_id) or static.k8s(c.cgroup_id, container_of),
            BOOLEAN[False],  # seeded: never, for an entry made from a kernel record
            tail_exit,
            BOOLEAN[r.escaped],
        ]
        return b"".join(out), r.escaped

    return encode


def seeded_record(
    *,
    index: int,
    host: str,
    boot_id: str,
    now_us: int,
    boot_to_wall_ns: int,
    pid: int,
    ppid: int,
    starttime_ticks: int,
    parent_starttime_ticks: int | None,
    uid: int,
    gid: int,
    comm: bytes,
    exe: bytes | None,
    argv: list[bytes],
    cgroup_id: int,
    container_id: str | None,
    opts: ExecOptions,
) -> dict[str, Any]:
    """The entry of a process alive when the collector started, as /proc tells it (kind `seeded`).

    Its identity is the one the seeded process table gives its later records (records/identity.py);
    argv is bounded like process_exec's.
    """
    boot = boot_tag(boot_id)
    start = start_ns_of_ticks(starttime_ticks)
    escaped = False
    texts: list[str] = []
    for b in [comm, *(exe or b"",), *argv[: opts.max_args]]:
        clean, e = clean_utf8(b)
        escaped |= e
        texts.append(clean.decode())
    comm_s, exe_s, *args = texts
    return {
        "timestamp": now_us,
        "boot_ns": 0,
        "host": host,
        "boot_id": boot_id,
        "cpu": -1,
        "seq": index,
        "kind": "seeded",
        "process_id": process_id(boot, start, pid),
        "parent_process_id": (
            None
            if parent_starttime_ticks is None
            else process_id(boot, start_ns_of_ticks(parent_starttime_ticks), ppid)
        ),
        "previous_process_id": None,
        "pid": pid,
        "ppid": ppid,
        "uid": uid,
        "gid": gid,
        "comm": comm_s,
        "filename": exe_s if exe is not None else None,
        "argv": [a[: opts.max_arg_len - 1] for a in args],
        "start_time": (start + boot_to_wall_ns) // 1000,
        "cgroup_id": cgroup_id,
        "container_id": container_id,
        "k8s": None,
        "seeded": True,
        "exit_time": None,
        "exit_code": None,
        "signal": None,
        "signal_name": None,
        "strings_escaped": escaped,
    }


def brief(v: dict[str, Any]) -> str:
    parent = f" parent={v['parent_process_id']}" if v["parent_process_id"] else ""
    what = v["filename"] or v["comm"]
    return f"{v['kind']} {v['process_id']} {what}{parent}"


class ProcessesSection(Protocol):
    """What this family reads of events.processes."""

    @property
    def table_size(self) -> int: ...
    @property
    def ring_pages(self) -> int: ...


def cflags(section: ProcessesSection) -> list[str]:
    """The process table's size (every record's identity needs it, whether or not the topic is on)."""
    return [f"-DEKP_PROCS_MAX={section.table_size}", f"-DEKP_PROC_RING_PAGES={section.ring_pages}"]
