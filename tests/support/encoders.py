"""The encoders of a raw record, for the tests that hold them equal.

- the reference: the family's dict decoder (producer/records/) + fastavro;
- the Python fast path: the family's `*_encoder` (records/avro.py);
- the native one (producer/native/src/records*.c), for the event types it covers, fed the cgroup
  fields the engine is fed (producer/native/fields.py).

Each must give the same Avro body and the same strings_escaped flag, or all must reject the record.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from producer.errors import DecodeError
from producer.k8s.meta import K8sMeta
from producer.native import NATIVE_TYPES, _dataplane, fields, tables
from producer.records import abi, avro, catalog, codec, process, process_exec, tcp
from producer.records.common import DecodeContext
from producer.records.containers import ContainerInfo
from tests.support.records import CTX

OFFSET = 1_700_000_000_123_456_789
SCHEMAS = {t: codec.load_schema(t) for t in catalog.STREAM_TYPES}
REFERENCE = {t: codec.Encoder(SCHEMAS[t]) for t in catalog.STREAM_TYPES}

Outcome = tuple[bytes, bool] | type[DecodeError]

POD = K8sMeta(
    namespace="payments",
    pod="web-7c9f-x2x",
    pod_uid="0d5f7a52-5ad1-4c8b-9d47-1f1e6f0d2f00",
    container="web",
    image="registry.local/web:1.2 \u00e9",
    labels={"app": "web", "app.kubernetes.io/part-of": "shop", "tier": ""},
    workload_kind="Deployment",
    workload="web",
    node="node-a",
    cluster=None,
)
SANDBOX = K8sMeta("kube-system", "p", "u", "POD", "", {}, None, None, "n", "c")


# the common fields of a record, anywhere in their ranges (the records' own fields are the tests')
COMMON = st.fixed_dictionaries(
    {
        "seq": st.integers(0, 2**63 - 1),
        "boot_ns": st.integers(10**9, 2**62),
        "cgroup_id": st.integers(0, 2**63 - 1),
        "pid": st.integers(1, abi.PID_MAX_LIMIT),
        "tid": st.integers(1, abi.PID_MAX_LIMIT),
        "ppid": st.integers(0, abi.PID_MAX_LIMIT),
        "uid": st.integers(0, 0xFFFFFFFF),
        "gid": st.integers(0, 0xFFFFFFFF),
        "task_flags": st.sampled_from([0, abi.TASK_PPID_UNKNOWN]),
        "comm": st.binary(min_size=0, max_size=15).filter(lambda b: b"\0" not in b),
    }
)

# file_open's own fields, anywhere in their ranges
OPEN_FIELDS = st.fixed_dictionaries(
    {
        "path": st.binary(max_size=255).filter(lambda b: b"\0" not in b),
        "open_flags": st.integers(0, 0xFFFFFFFF),
        "mode": st.integers(0, 0o7777),
        "ret": st.integers(-4095, 2**31 - 1),
        "syscall": st.integers(0, 1),
        "flags": st.integers(0, 1),
    }
)


# a process_exit's own fields: every flag combination, values inside and just beyond their ranges
EXIT_FIELDS = st.fixed_dictionaries(
    {
        "flags": st.integers(0, process.EXIT_FLAGS_ALL) | st.sampled_from([0x8, 0xFFFFFFFF]),
        "exit_code": st.integers(0, 255) | st.integers(-(2**31), 2**31 - 1),
        "signal": st.integers(0, process.EXIT_SIGNAL_MAX + 1) | st.integers(0, 2**32 - 1),
        "fork_ns": st.integers(0, 2**62) | st.integers(0, 2**64 - 1),
        "filename": st.binary(max_size=256),
    }
)

# a process_fork's own fields, likewise
FORK_FIELDS = st.fixed_dictionaries(
    {
        "flags": st.integers(0, process.FORK_FLAGS_ALL) | st.sampled_from([0x2, 0xFFFFFFFF]),
        "child_pid": st.integers(1, abi.PID_MAX_LIMIT) | st.integers(0, 2**32 - 1),
        "child_start_ns": st.integers(0, 2**62) | st.integers(0, 2**64 - 1),
        "filename": st.binary(max_size=256),
    }
)


# a tcp record's own fields: the known families and directions, and values beyond them; any address bytes
TCP_FIELDS = st.fixed_dictionaries(
    {
        "family": st.sampled_from(sorted(tcp.FAMILIES)) | st.integers(0, 0xFFFF),
        "direction": st.sampled_from(sorted(tcp.DIRECTIONS)) | st.integers(0, 0xFF),
        "sport": st.integers(0, 0xFFFF),
        "dport": st.integers(0, 0xFFFF),
        "established_ns": st.integers(0, 2**62) | st.integers(0, 2**64 - 1),
        "saddr": st.binary(min_size=16, max_size=16),
        "daddr": st.binary(min_size=16, max_size=16),
    }
)


# a process_exec's own fields: every flag and beyond, retvals of both signs, arguments around the default
# bounds (32 of fewer than 128 bytes), sometimes with NULs inside or a count / size that disagrees with them
EXEC_FIELDS = st.fixed_dictionaries(
    {
        "flags": st.integers(0, process_exec.EXEC_FLAGS_ALL) | st.sampled_from([0x40, 0xFFFFFFFF]),
        "retval": st.sampled_from([0, -1, -2, 1]) | st.integers(-(2**31), 2**31 - 1),
        "argv": st.lists(
            st.binary(max_size=130).filter(lambda b: b"\0" not in b) | st.binary(max_size=4), max_size=34
        ),
        "args_count": st.none() | st.integers(0, 0xFFFF),
        "args_size": st.none() | st.integers(0, 0xFFFF),
        "pad": st.integers(0, 8),
        "prev_start_ns": st.none() | st.integers(0, 2**64 - 1),
        "filename": st.binary(max_size=256),
        "parent_filename": st.binary(max_size=256),
        "parent_comm": st.binary(max_size=16),
    }
)


def containers(cgroup_id: int) -> ContainerInfo | None:
    if cgroup_id % 3 == 0:
        return None  # a cgroup the resolver does not know
    return ContainerInfo("/x", f"{cgroup_id:064x}" if cgroup_id % 2 else None, None)


class Pods:
    """The reader's Kubernetes resolver as the encoders see it, without a runtime: cgroups 1 and 2
    are pods' (a container with labels, a sandbox), cgroups 7 and 11 pods' not resolved yet, the
    rest no pod's."""

    PENDING = frozenset({7, 11})

    def __init__(self) -> None:
        self.meta = {1: POD, 2: SANDBOX}
        self.encoded = {cg: m.encode_union() for cg, m in self.meta.items()}
        self.misses: list[int] = []

    def unresolved(self, cgroup_id: int, info: ContainerInfo | None) -> bool:
        """k8s/resolver.py PodResolver.unresolved."""
        if cgroup_id in self.PENDING:
            return True
        if info is not None:
            self.encoded[cgroup_id] = avro.NULL
        return False

    def missed(self, cgroup_id: int, container_of: avro.ContainerOf) -> bytes:
        """reader/pods.py RingPods.missed."""
        if self.unresolved(cgroup_id, container_of(cgroup_id)):
            self.misses.append(cgroup_id)
        return avro.NULL

    def record(self, cgroup_id: int) -> dict[str, Any] | None:
        meta = self.meta.get(cgroup_id)
        return None if meta is None else meta.record()


def reference(
    event_type: str, raw: bytes, cpu: int, offset: int, pods: Pods | None = None, ctx: DecodeContext = CTX
) -> Outcome:
    try:
        rec = catalog.DECODERS[event_type](raw, cpu, ctx, offset)
    except DecodeError:
        return DecodeError
    info = containers(rec["cgroup_id"])
    rec["container_id"] = None if info is None else info.container_id
    if pods is not None:
        rec["k8s"] = pods.record(rec["cgroup_id"])
    return REFERENCE[event_type].encode(rec)[codec.HEADER_LEN :], rec["strings_escaped"]


def fast(
    event_type: str, raw: bytes, cpu: int, offset: int, pods: Pods | None = None, ctx: DecodeContext = CTX
) -> Outcome:
    try:
        return catalog.BY_NAME[event_type].fast_encoder(ctx, pods=pods)(raw, cpu, offset, containers)
    except DecodeError:
        return DecodeError


class Native:
    """The engine's way: a record of a cgroup not in the table stops; Python fills the entry; again.
    Its tables are those of `ctx` (its process_exec options), as the plane builds them from the reader's."""

    def __init__(self, pods: Pods | None = None, ctx: DecodeContext = CTX) -> None:
        exec_opts = ctx.option("process_exec", process_exec.ExecOptions)
        self.encoder = _dataplane.Encoder(tables.encoder_tables(ctx.host, ctx.boot_id, exec_opts))
        self.pods = pods
        self.unresolved = 0  # records the engine would count as k8s_unresolved

    def __call__(self, event_type: str, raw: bytes, cpu: int, offset: int) -> Outcome:
        type_id = catalog.EVENT_TYPE_IDS[event_type]
        for _ in range(2):
            try:
                body, escaped, unresolved = self.encoder.encode(raw, cpu, offset, type_id)
            except _dataplane.DecodeError:
                return DecodeError
            except _dataplane.CgroupMiss as miss:
                cg = miss.args[0]
                f = fields.cgroup_fields(cg, containers, self.pods, holds_for=lambda _: 2.0, refresh_s=60.0)
                self.encoder.set_cgroup(cg, f.container, f.k8s, int(f.ttl_s * 1e9), f.unresolved)
                continue
            self.unresolved += unresolved
            return body, escaped
        raise AssertionError("the cgroup was set and still missed")


# one native encoder per decode context the tests use (its host, boot id and process_exec options)
_NATIVE: dict[tuple[str, str, process_exec.ExecOptions], Native] = {}


def native(ctx: DecodeContext = CTX) -> Native:
    key = (ctx.host, ctx.boot_id, ctx.option("process_exec", process_exec.ExecOptions))
    enc = _NATIVE.get(key)
    if enc is None:
        enc = _NATIVE[key] = Native(ctx=ctx)
    return enc


def assert_same(
    event_type: str,
    raw: bytes,
    cpu: int = 0,
    offsets: tuple[int, ...] = (OFFSET,),
    ctx: DecodeContext = CTX,
) -> None:
    """`ctx`: the reader's decode context, the same for all three (its options: process_exec's bounds)."""
    for offset in offsets:
        want = reference(event_type, raw, cpu, offset, ctx=ctx)
        got: dict[str, Any] = {"fast": fast(event_type, raw, cpu, offset, ctx=ctx)}
        if event_type in NATIVE_TYPES:
            got["native"] = native(ctx)(event_type, raw, cpu, offset)
        for name, outcome in got.items():
            assert outcome == want, (name, raw.hex()[:2000], offset)
