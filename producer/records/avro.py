"""Avro binary, written by hand for the readers' fast path: raw kernel records straight to Avro bytes.

The reference path decodes a record into a dict (each family's `decode_*`) and lets fastavro encode
it: clear, and ~9 µs per exec record here. The fast encoders (each family's `*_encoder`) write the
Avro binary encoding directly from the parsed values with the primitives below — no dict, no schema
walk per record, the static parts (host, boot id) encoded once — for ~3 µs. Both start from the same
parse functions, so validation is written once, and tests hold the two byte for byte equal for every
event type, including boundary values and a fuzz (tests/unit/test_rawavro.py).

Avro binary, as used here: long = zigzag varint; string = long length + UTF-8 bytes; boolean = one
byte; union = long branch index + value; array = long count + items + 0 (empty array: just 0).
Fields in schema order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .abi import TASK_BYTES
from .common import Common, DecodeContext
from .identity import process_id

if TYPE_CHECKING:
    from .containers import ContainerInfo

# Zigzagged values below 2**14 (ints in -8192..8191): one lookup.
SMALL = [bytes((z,)) if z < 0x80 else bytes(((z & 0x7F) | 0x80, z >> 7)) for z in range(1 << 14)]
# 14 low bits with the continuation bit on both bytes: two bytes of a longer varint.
_CHUNK = [bytes(((z & 0x7F) | 0x80, ((z >> 7) & 0x7F) | 0x80)) for z in range(1 << 14)]


def long_(n: int) -> bytes:
    """Avro long: zigzag, then little-endian base-128 varint, 14 bits per table lookup.

    Unrolled by size: timestamps (~2**51) and boot times, the values every
    record has, take the third branch without a loop.
    """
    z = (n << 1) ^ (n >> 63)
    if z < 1 << 14:
        return SMALL[z]
    if z < 1 << 28:
        return _CHUNK[z & 0x3FFF] + SMALL[z >> 14]
    if z < 1 << 42:
        return _CHUNK[z & 0x3FFF] + _CHUNK[(z >> 14) & 0x3FFF] + SMALL[z >> 28]
    if z < 1 << 56:
        return _CHUNK[z & 0x3FFF] + _CHUNK[(z >> 14) & 0x3FFF] + _CHUNK[(z >> 28) & 0x3FFF] + SMALL[z >> 42]
    parts = []
    while z >= 1 << 14:
        parts.append(_CHUNK[z & 0x3FFF])
        z >>= 14
    parts.append(SMALL[z])
    return b"".join(parts)


def string_(b: bytes) -> bytes:
    n = len(b)
    return (SMALL[n << 1] if n < 8192 else long_(n)) + b


NULL = b"\x00"
BRANCH1 = b"\x02"
# Avro boolean, indexed by a bool (a lookup, not a call: the fast path writes several per record)
BOOLEAN = (b"\x00", b"\x01")
EMPTY_ARRAY = b"\x00"


def opt_long(n: int | None) -> bytes:
    return NULL if n is None else BRANCH1 + long_(n)


def opt_string(b: bytes | None) -> bytes:
    return NULL if b is None else BRANCH1 + string_(b)


ContainerOf = Callable[[int], "ContainerInfo | None"]
# (raw, cpu, boot_to_wall_ns, container_of) -> (framing prefix + Avro body, strings escaped?)
Encoder = Callable[[bytes, int, int, ContainerOf], tuple[bytes, bool]]
# Builds a ring's encoder: (what is static for the reader, the event type's id) -> Encoder
EncoderFactory = Callable[["Static", int], Encoder]


class PodSource(Protocol):
    """Where a ring's `k8s` values come from (reader/pods.py: the reader's Kubernetes resolver)."""

    # cgroup id -> the encoded `k8s` union, kept current by the resolver: the fast path's one lookup
    encoded: dict[int, bytes]

    def missed(self, cgroup_id: int, container_of: ContainerOf) -> bytes:
        """The value for a cgroup `encoded` lacks (null), the miss counted when it is a pod's."""
        ...


class Static:
    """What is the same for every record of one ring: encoded once.

    `prefix`: the framing every message starts with (kafka/framing.py); the encoders write it first,
    so a message is joined once rather than copied again behind its prefix.
    """

    # A process sends many records; its fields are encoded once and reused (bounded memo).
    PROCESS_MEMO = 4096

    def __init__(self, ctx: DecodeContext, prefix: bytes = b"", pods: PodSource | None = None) -> None:
        """`pods`: the reader's Kubernetes resolver; None (attribution off): `k8s` is always null."""
        self.ctx = ctx
        self.prefix = prefix
        self.host_boot = string_(ctx.host.encode()) + string_(ctx.boot_id.encode())
        self.processes: dict[tuple[Any, ...], bytes] = {}  # process fields -> their encoding
        self.containers: dict[int, bytes] = {}  # cgroup id -> its container id, encoded
        self.boot = ctx.boot  # process ids' boot part
        self.identities: dict[tuple[Any, ...], bytes] = {}  # (pid, start, ppid, parent start) -> ids
        # a record's task bytes -> its process fields and its ids, encoded: one lookup for both
        self.tasks: dict[bytes, tuple[bytes, bytes]] = {}
        self.pods = pods
        # cgroup id -> its `k8s` union: the resolver's own dict (it fills it from its thread)
        self.k8s_encoded: dict[int, bytes] = {} if pods is None else pods.encoded

    def container(self, cgroup_id: int, container_of: ContainerOf) -> bytes:
        enc = self.containers.get(cgroup_id)
        if enc is None:
            info = container_of(cgroup_id)
            cid = None if info is None else info.container_id
            enc = opt_string(None if cid is None else cid.encode())
            if info is not None:  # an unknown cgroup may be found later (a new container): not kept
                self.containers[cgroup_id] = enc
        return enc

    def identity(self, key: tuple[Any, ...]) -> bytes:
        """process_id and parent_process_id (records/identity.py) of (pid, start, ppid, parent start)."""
        enc = self.identities.get(key)
        if enc is None:
            if len(self.identities) >= self.PROCESS_MEMO:
                self.identities.clear()
            pid, start, ppid, parent_start = key
            enc = self.identities[key] = opt_id(self.boot, start, pid) + opt_id(self.boot, parent_start, ppid)
        return enc

    def task(self, key: bytes, c: Common, nullable: bool) -> tuple[bytes, bytes]:
        """The process fields and the ids of a record whose task bytes are `key`: they are a function
        of those bytes alone (parse_common reads them from nothing else)."""
        if len(self.tasks) >= self.PROCESS_MEMO:
            self.tasks.clear()
        enc = self.tasks[key] = (
            self.process((c.pid, c.tid, c.ppid, c.uid, c.gid, c.comm, c.cgroup_id), nullable),
            self.identity((c.pid, c.start_ns, c.ppid, c.parent_start_ns)),
        )
        return enc

    def k8s(self, cgroup_id: int, container_of: ContainerOf) -> bytes:
        """The `k8s` union of a cgroup `k8s_encoded` lacks: null (its pod is not known yet, or it is
        no pod's). Never waits: the resolver learns it in the background."""
        if self.pods is not None:
            return self.pods.missed(cgroup_id, container_of)
        if len(self.k8s_encoded) >= self.PROCESS_MEMO:
            self.k8s_encoded.clear()
        self.k8s_encoded[cgroup_id] = NULL  # attribution off: null for every cgroup, one lookup
        return NULL

    def process(self, key: tuple[Any, ...], nullable: bool) -> bytes:
        """pid, tid, ppid, uid, gid, comm, cgroup_id of the common fields, encoded."""
        enc = self.processes.get(key)
        if enc is None:
            if len(self.processes) >= self.PROCESS_MEMO:
                self.processes.clear()
            pid, tid, ppid, uid, gid, comm, cgroup_id = key
            if nullable:
                enc = (
                    opt_long(pid)
                    + opt_long(tid)
                    + opt_long(ppid)
                    + opt_long(uid)
                    + opt_long(gid)
                    + opt_string(comm)
                    + long_(cgroup_id)
                )
            else:
                enc = (
                    long_(pid)
                    + long_(tid)
                    + opt_long(ppid)
                    + long_(uid)
                    + long_(gid)
                    + string_(comm)
                    + long_(cgroup_id)
                )
            self.processes[key] = enc
        return enc


def opt_id(boot: str, start_ns: int | None, pid: int | None) -> bytes:
    """A process id as the schemas' optional string (null without its start or pid)."""
    if start_ns is None or pid is None:
        return NULL
    return BRANCH1 + string_(process_id(boot, start_ns, pid).encode())


def tail(c: Common, static: Static, container_of: ContainerOf) -> bytes:
    """process_id, parent_process_id and k8s: the fields every process record ends with (schema v2+)."""
    key = (c.pid, c.start_ns, c.ppid, c.parent_start_ns)
    ids = static.identities.get(key) or static.identity(key)
    return ids + (static.k8s_encoded.get(c.cgroup_id) or static.k8s(c.cgroup_id, container_of))


def common(
    raw: bytes,
    c: Common,
    static: Static,
    boot_to_wall_ns: int,
    container_of: ContainerOf,
    nullable: bool = False,
) -> tuple[list[bytes], bytes]:
    """The prefix, then timestamp, boot_ns, host, boot_id, cpu, seq and the process fields, in every
    schema's order; and the record's tail (process_id, parent_process_id, k8s: schema v2+), which
    the family writes after its own fields.

    `nullable`: the tcp schemas, whose process fields are unions with null (the socket's process may be
    unknown); every other schema has them as plain values, always known.
    """
    key = raw[TASK_BYTES]
    # the memo lookups inlined: a method call per record is a measurable part of the fast path
    process, ids = static.tasks.get(key) or static.task(key, c, nullable)
    cgroup_id = c.cgroup_id
    container = static.containers.get(cgroup_id) or static.container(cgroup_id, container_of)
    return [
        static.prefix,
        long_((c.boot_ns + boot_to_wall_ns) // 1000),
        long_(c.boot_ns),
        static.host_boot,
        SMALL[c.cpu << 1],
        long_(c.seq),
        process,
        container,
    ], ids + (static.k8s_encoded.get(cgroup_id) or static.k8s(cgroup_id, container_of))
