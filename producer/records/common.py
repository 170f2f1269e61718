"""What every raw record shares: its header and task, parsed and validated once for all families.

Parsing is the first thing done to bytes from the kernel and trusts none of them: every length,
count, flag and range is checked, and anything wrong raises DecodeError, which the reader counts as
decode_error. Parse results are NamedTuples built with tuple.__new__ (the cheapest way to make one,
measured: this is the readers' hot path); the reference decoders (to a dict) and the fast Avro
encoders (records/avro.py) both start from them, so validation is written once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from ..errors import DecodeError
from .abi import (
    COMMON,
    HEAD,
    INT64_MAX,
    PID_MAX_LIMIT,
    TASK_BYTES,
    TASK_FLAGS_ALL,
    TASK_OWNER_UNKNOWN,
    TASK_PARENT_UNKNOWN,
    TASK_PPID_UNKNOWN,
    TASK_PROC_UNKNOWN,
)
from .identity import boot_tag, process_id

if TYPE_CHECKING:
    from .ancestry import Lookup

T = TypeVar("T")
new = tuple.__new__  # NamedTuple(...) costs twice as much; the fields are in order by construction

_COMMON = COMMON.struct
# A process sends many records with the same task bytes: their validated fields, memoized (bounded).
# Only task bytes without flags are kept, so a hit needs no check that depends on the owner.
TASKS_MEMO = 4096
# task bytes -> pid, tid, ppid, uid, gid, comm, cgroup_id, escaped, start, parent start
_tasks: dict[bytes, tuple[Any, ...]] = {}


@dataclass(frozen=True)
class DecodeContext:
    """What decoders need besides the bytes; fixed for a reader's life.

    `options`: per event type, the settings its family's parser needs (the catalog's `options` hook
    builds them from the type's config section: records/catalog.py, decode_context).
    """

    host: str
    boot_id: str
    options: Mapping[str, Any] = field(default_factory=dict)
    # The kernel's process table (records/ancestry.py), for the ancestors of an exec; None: not read
    procs: Lookup | None = field(default=None, compare=False)

    @property
    def boot(self) -> str:
        """The boot part of process ids (records/identity.py)."""
        return boot_tag(self.boot_id)

    def option(self, event_type: str, kind: type[T]) -> T:
        """The options of `event_type` (its defaults when none were given)."""
        value = self.options.get(event_type)
        if value is None:
            return kind()
        if not isinstance(value, kind):
            raise TypeError(f"options of {event_type}: {type(value).__name__}, not {kind.__name__}")
        return value


class Common(NamedTuple):
    """Header and task of a record. The process fields are None only for tcp records whose socket's
    process was not seen; ppid also when the parent was not tracked. start_ns (with pid, the
    identity: records/identity.py) is None when the process was not in the kernel's process table,
    parent_start_ns also when the parent's image is not known."""

    boot_ns: int
    seq: int
    cpu: int
    pid: int | None
    tid: int | None
    ppid: int | None
    uid: int | None
    gid: int | None
    comm: bytes | None
    cgroup_id: int
    escaped: bool
    start_ns: int | None
    parent_start_ns: int | None


def clean_utf8(b: bytes) -> tuple[bytes, bool]:
    """Kernel bytes -> (valid UTF-8 bytes, escaped?).

    Linux paths and arguments are bytes, not UTF-8. Dropping an event because
    a name is not valid UTF-8 would let anyone hide a program or file from the
    stream by naming it so; instead invalid bytes are kept as \\xNN escapes and
    the record says so (strings_escaped). Valid UTF-8 (nearly always ASCII)
    passes through untouched: it is already what Avro writes.
    """
    if b.isascii():
        return b, False
    try:
        b.decode("utf-8")
        return b, False
    except UnicodeDecodeError:
        return b.decode("utf-8", "backslashreplace").encode("utf-8"), True


def cstr(raw: bytes, what: str) -> bytes:
    end = raw.find(b"\0")
    if end < 0:
        raise DecodeError(f"{what}: not NUL-terminated")
    return raw[:end]


def parse_common(
    raw: bytes, cpu: int, fixed_size: int, type_id: int, *, owner_may_be_unknown: bool = False
) -> Common:
    """Header and task of any record, validated. `fixed_size`: the record's fixed part, all of it required."""
    if len(raw) < fixed_size:
        raise DecodeError(f"truncated: {len(raw)} bytes, the fixed part alone is {fixed_size}")
    task = _tasks.get(raw[TASK_BYTES])
    if task is None:
        return _parse_task(raw, cpu, type_id, owner_may_be_unknown)
    # the task was validated when first met; the header is this record's own
    boot_ns, seq, typ, hdr_cpu = HEAD.unpack_from(raw)
    if typ != type_id:
        raise DecodeError(f"type {typ} in a buffer of type {type_id}")
    if hdr_cpu != cpu:
        raise DecodeError(f"record says cpu {hdr_cpu}, read from cpu {cpu}'s buffer")
    if (boot_ns | seq) > INT64_MAX:
        raise DecodeError("a 64-bit field is beyond the Avro long range")
    if task[8] > boot_ns:  # an image starts before its records
        raise DecodeError(f"identity times {task[8]}/{task[9]} out of order (event {boot_ns})")
    return new(Common, (boot_ns, seq, cpu) + task)  # noqa: RUF005 - concatenation measured faster


def _parse_task(raw: bytes, cpu: int, type_id: int, owner_may_be_unknown: bool) -> Common:
    """parse_common for task bytes not in the memo: every field checked, kept when it has no flag."""
    fields = _COMMON.unpack_from(raw)
    (
        boot_ns,
        seq,
        typ,
        hdr_cpu,
        cgroup_id,
        start_ns,
        parent_start_ns,
        pid,
        tid,
        ppid,
        uid,
        gid,
        tflags,
        comm_b,
    ) = fields
    if typ != type_id:
        raise DecodeError(f"type {typ} in a buffer of type {type_id}")
    if hdr_cpu != cpu:
        raise DecodeError(f"record says cpu {hdr_cpu}, read from cpu {cpu}'s buffer")
    if (boot_ns | seq | cgroup_id) > INT64_MAX:  # unsigned: any of them has bit 63 set
        raise DecodeError("a 64-bit field is beyond the Avro long range")
    if tflags:  # nearly every record has none
        return _flagged(fields, cpu, owner_may_be_unknown)
    if not 0 < pid <= PID_MAX_LIMIT or not 0 < tid <= PID_MAX_LIMIT or ppid > PID_MAX_LIMIT:
        raise DecodeError(f"pid {pid} / tid {tid} / ppid {ppid} out of range")
    # an image starts before its records, and its parent's before it
    if not 0 < start_ns <= boot_ns or parent_start_ns > start_ns:
        raise DecodeError(f"identity times {start_ns}/{parent_start_ns} out of order (event {boot_ns})")
    comm, escaped = clean_utf8(cstr(comm_b, "comm"))
    task = (pid, tid, ppid, uid, gid, comm, cgroup_id, escaped, start_ns, parent_start_ns)
    if len(_tasks) >= TASKS_MEMO:
        _tasks.clear()
    _tasks[raw[TASK_BYTES]] = task
    return new(Common, (boot_ns, seq, cpu, *task))


def _flagged(fields: tuple[Any, ...], cpu: int, owner_may_be_unknown: bool) -> Common:
    """parse_common's slow path: a record with any task flag (an unknown owner, parent or identity).
    `fields`: the common part as parse_common unpacked it (its type and CPU already checked)."""
    boot_ns, seq, _, _, cgroup_id, start_ns, parent_start_ns, pid, tid, ppid, uid, gid, tflags, comm_b = (
        fields
    )
    if tflags & ~TASK_FLAGS_ALL:
        raise DecodeError(f"unknown task flags {tflags:#x}")
    if tflags & TASK_OWNER_UNKNOWN:
        if not owner_may_be_unknown:
            raise DecodeError("owner-unknown flag on a record that always has its process")
        return new(
            Common, (boot_ns, seq, cpu, None, None, None, None, None, None, cgroup_id, False, None, None)
        )
    if not 0 < pid <= PID_MAX_LIMIT or not 0 < tid <= PID_MAX_LIMIT:
        raise DecodeError(f"pid {pid} / tid {tid} out of range")
    if ppid > PID_MAX_LIMIT:
        raise DecodeError(f"ppid {ppid} out of range")
    comm, escaped = clean_utf8(cstr(comm_b, "comm"))
    if tflags & TASK_PPID_UNKNOWN:
        ppid = None
    if tflags & TASK_PROC_UNKNOWN:
        start = parent_start = None
    else:
        # an image starts before its records, and its parent's before it
        if not 0 < start_ns <= boot_ns or parent_start_ns > start_ns:
            raise DecodeError(f"identity times {start_ns}/{parent_start_ns} out of order (event {boot_ns})")
        start = start_ns
        parent_start = None if tflags & TASK_PARENT_UNKNOWN else parent_start_ns
    return new(
        Common,
        (boot_ns, seq, cpu, pid, tid, ppid, uid, gid, comm, cgroup_id, escaped, start, parent_start),
    )


def common_dict(c: Common, ctx: DecodeContext, boot_to_wall_ns: int) -> dict[str, Any]:
    """The common fields of every event schema, as the reference decoders give them to fastavro."""
    return {
        "timestamp": (c.boot_ns + boot_to_wall_ns) // 1000,
        "boot_ns": c.boot_ns,
        "host": ctx.host,
        "boot_id": ctx.boot_id,
        "cpu": c.cpu,
        "seq": c.seq,
        "pid": c.pid,
        "tid": c.tid,
        "ppid": c.ppid,
        "uid": c.uid,
        "gid": c.gid,
        "comm": None if c.comm is None else c.comm.decode(),
        "cgroup_id": c.cgroup_id,
        "container_id": None,  # filled by the reader's container resolver
        "strings_escaped": c.escaped,  # a family with strings of its own ORs them in
        **identity_dict(c, ctx),
        "k8s": None,  # filled by the reader's Kubernetes resolver
    }


def identity_dict(c: Common, ctx: DecodeContext) -> dict[str, str | None]:
    """process_id and parent_process_id of a record's process (None where not known)."""
    boot = ctx.boot
    return {
        "process_id": None if c.pid is None or c.start_ns is None else process_id(boot, c.start_ns, c.pid),
        "parent_process_id": (
            None
            if c.ppid is None or c.parent_start_ns is None
            else process_id(boot, c.parent_start_ns, c.ppid)
        ),
    }
