"""The fast path writes the same bytes as the reference (decode to a dict, encode with fastavro).

For every event type: typical records, boundary values, every optional field
both ways, and a fuzz over field values and over corrupted records (where
both paths must agree on rejecting them, too).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producer.errors import DecodeError
from producer.records import abi, ancestry, avro, catalog, codec, process, process_exec, tcp
from tests.support.encoders import COMMON, OFFSET, OPEN_FIELDS, POD, REFERENCE, SANDBOX, SCHEMAS, containers
from tests.support.records import BOUNDARY, BUILDERS, CTX, exec_record, exit_record, open_record, tcp_record

FAST = {t: catalog.BY_NAME[t].fast_encoder(CTX) for t in catalog.STREAM_TYPES}


def reference(event_type: str, raw: bytes, cpu: int = 0) -> bytes:
    rec = catalog.DECODERS[event_type](raw, cpu, CTX, OFFSET)
    info = containers(rec["cgroup_id"])
    rec["container_id"] = None if info is None else info.container_id
    return REFERENCE[event_type].encode(rec)[codec.HEADER_LEN :]


def assert_same(event_type: str, raw: bytes, cpu: int = 0) -> None:
    try:
        want: bytes | type[DecodeError] = reference(event_type, raw, cpu)
    except DecodeError:
        want = DecodeError
    try:
        body, escaped = FAST[event_type](raw, cpu, OFFSET, containers)
        got: bytes | type[DecodeError] = body
        assert escaped == catalog.DECODERS[event_type](raw, cpu, CTX, OFFSET)["strings_escaped"]
    except DecodeError:
        got = DecodeError
    assert got == want


def test_long_encoding_matches_avro() -> None:
    import io

    import fastavro

    for n in [0, 1, -1, 63, -64, 64, 8191, -8192, 8192, 2**31, -(2**31), 2**62, 2**63 - 1, -(2**63)]:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, "long", n)
        assert avro.long_(n) == buf.getvalue(), n


@pytest.mark.parametrize("event_type", catalog.STREAM_TYPES)
def test_typical_and_boundary_records(event_type: str) -> None:
    build = BUILDERS[event_type]
    assert_same(event_type, build())
    assert_same(event_type, build(cgroup_id=3))  # with a container id
    assert_same(event_type, build(**BOUNDARY))
    assert_same(event_type, build(task_flags=abi.TASK_PPID_UNKNOWN, comm=b"\xff\xfe", cpu=1), cpu=1)


def test_every_optional_field_both_ways() -> None:
    assert_same("process_exec", exec_record(argv=[], flags=process_exec.EXEC_ARGV_MISSING, filename=b""))
    assert_same("process_exec", exec_record(argv=[b"\xff", b"x" * 100], flags=0xF))
    assert_same("process_exit", exit_record(flags=process.EXIT_SIGNALED, signal=9))
    assert_same("process_exit", exit_record(flags=process.EXIT_SIGNALED, signal=40))
    assert_same("process_exit", exit_record(flags=0))
    assert_same("file_open", open_record(ret=-2))
    assert_same("file_open", open_record(ret=-4095))  # no errno name
    assert_same("file_open", open_record(open_flags=os.O_WRONLY | os.O_CREAT | 0x40000000, mode=0o600))
    assert_same("file_open", open_record(syscall=1, path=b"/tmp/\xff", flags=1))
    for t in ("tcp_connect", "tcp_accept", "tcp_close"):
        assert_same(t, tcp_record(t, family=tcp.AF_INET6, saddr="::ffff:10.0.0.1", daddr="2001:db8::1"))
        assert_same(t, tcp_record(t, pid=0, tid=0, uid=0, gid=0, comm=b"", task_flags=abi.TASK_OWNER_UNKNOWN))


@settings(max_examples=300, deadline=None)
@given(
    COMMON,
    st.lists(st.binary(max_size=127).filter(lambda b: b"\0" not in b), max_size=32),
    st.binary(max_size=255).filter(lambda b: b"\0" not in b),
    st.integers(0, 0xF),
)
def test_fuzz_exec(c: dict[str, Any], argv: list[bytes], filename: bytes, flags: int) -> None:
    assert_same("process_exec", exec_record(argv=argv, filename=filename, flags=flags, **c))


@settings(max_examples=200, deadline=None)
@given(
    COMMON,
    st.integers(0, 255),
    st.integers(1, 64),
    st.sampled_from([0, 1, 4, 5, 2, 6]),
    st.integers(0, 10**9),
)
def test_fuzz_exit(c: dict[str, Any], code: int, sig: int, flags: int, start: int) -> None:
    assert_same("process_exit", exit_record(exit_code=code, signal=sig, flags=flags, fork_ns=start, **c))


@settings(max_examples=200, deadline=None)
@given(COMMON, OPEN_FIELDS)
def test_fuzz_open(c: dict[str, Any], own: dict[str, Any]) -> None:
    assert_same("file_open", open_record(**own, **c))


@settings(max_examples=200, deadline=None)
@given(
    COMMON,
    st.sampled_from(["tcp_connect", "tcp_accept", "tcp_close"]),
    st.booleans(),
    st.integers(0, 65535),
    st.integers(0, 65535),
    st.sampled_from([1, 2]),
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=16, max_size=16),
)
def test_fuzz_tcp(
    c: dict[str, Any], t: str, v6: bool, sport: int, dport: int, direction: int, s: bytes, d: bytes
) -> None:
    import ipaddress

    fam = tcp.AF_INET6 if v6 else tcp.AF_INET
    sa = str(ipaddress.IPv6Address(s)) if v6 else str(ipaddress.IPv4Address(s[:4]))
    da = str(ipaddress.IPv6Address(d)) if v6 else str(ipaddress.IPv4Address(d[:4]))
    assert_same(
        t,
        tcp_record(
            t,
            family=fam,
            saddr=sa,
            daddr=da,
            sport=sport,
            dport=dport,
            direction=direction,
            established_ns=c["boot_ns"] // 2,
            **c,
        ),
    )


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(catalog.STREAM_TYPES), st.data())
def test_fuzz_corrupted_records_agree_too(event_type: str, data: st.DataObject) -> None:
    raw = bytearray(BUILDERS[event_type]())
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    assert_same(event_type, bytes(raw[: data.draw(st.integers(0, len(raw)))]))


def test_inline_ancestors_both_ways() -> None:
    """events.process_exec.ancestors: a chain from the process table, cut where an image changed."""
    raw = exec_record(ppid=4242)
    common = process_exec.parse_exec(
        raw, 0, catalog.EVENT_TYPE_IDS["process_exec"], process_exec.ExecOptions()
    ).common
    assert common.ppid is not None and common.parent_start_ns is not None
    table = {
        common.ppid: ancestry.Proc(common.parent_start_ns, 500, 77, b"/usr/bin/bash", False),
        77: ancestry.Proc(500, 400, 1, b"/usr/sbin/sshd\\xff", True),
        1: ancestry.Proc(300, 0, 0, None, False),  # not the image 77's parent was: the chain ends at 77
    }
    for depth, want in ((1, 1), (3, 2), (16, 2)):
        opts = {"process_exec": process_exec.ExecOptions(ancestors=depth)}
        ctx = dataclasses.replace(CTX, options=opts, procs=table.get)
        rec = catalog.DECODERS["process_exec"](raw, 0, ctx, OFFSET)
        chain = rec["ancestors"]
        assert [a["filename"] for a in chain] == ["/usr/bin/bash", "/usr/sbin/sshd\\xff"][:want]
        assert chain[0]["process_id"] == rec["parent_process_id"]
        assert rec["strings_escaped"] == (want == 2)
        info = containers(rec["cgroup_id"])
        rec["container_id"] = None if info is None else info.container_id
        fast = catalog.BY_NAME["process_exec"].fast_encoder(ctx)
        assert fast(raw, 0, OFFSET, containers) == (
            REFERENCE["process_exec"].encode(rec)[codec.HEADER_LEN :],
            rec["strings_escaped"],
        )
    # off (the default), or no table: null, not an empty chain
    assert catalog.DECODERS["process_exec"](raw, 0, CTX, OFFSET)["ancestors"] is None
    gone = dataclasses.replace(
        CTX, options={"process_exec": process_exec.ExecOptions(ancestors=4)}, procs={}.get
    )
    assert catalog.DECODERS["process_exec"](raw, 0, gone, OFFSET)["ancestors"] == []


# -- the k8s field ----------------------------------------------------------------------------------


class Pods:
    """What the reader's resolver hands the encoders (reader/pods.py): the pure logic, no runtime."""

    def __init__(self) -> None:
        self.meta = {1: POD, 2: SANDBOX}
        self.encoded = {cg: m.encode_union() for cg, m in self.meta.items()}
        self.misses: list[int] = []

    def missed(self, cgroup_id: int, container_of: avro.ContainerOf) -> bytes:
        self.misses.append(cgroup_id)
        return avro.NULL


@pytest.mark.parametrize("event_type", catalog.STREAM_TYPES)
def test_k8s_values_are_fastavros_too(event_type: str) -> None:
    pods = Pods()
    fast = catalog.BY_NAME[event_type].fast_encoder(CTX, pods=pods)
    build = BUILDERS[event_type]
    for cg in (1, 2, 7):  # a pod container with labels, a sandbox, a cgroup the resolver lacks
        raw = build(cgroup_id=cg)
        rec = catalog.DECODERS[event_type](raw, 0, CTX, OFFSET)
        info = containers(cg)
        rec["container_id"] = None if info is None else info.container_id
        meta = pods.meta.get(cg)
        rec["k8s"] = None if meta is None else meta.record()
        want = REFERENCE[event_type].encode(rec)[codec.HEADER_LEN :]
        assert fast(raw, 0, OFFSET, containers)[0] == want, cg
        schema = SCHEMAS[event_type]
        _, decoded = codec.decode(schema.header + want, {schema.fingerprint: schema})
        assert decoded["k8s"] == rec["k8s"]
    assert pods.misses == [7]  # the known ones are one lookup: `missed` is asked for the unknown only
