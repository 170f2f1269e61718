"""The decoders of raw records: good records, every kind of bad one, and a fuzz, for every event type.

Also the schema side of "define each event once": each decoder's output and
its schemas/<type>.avsc must agree field by field, at the boundary values the
kernel can produce; every event type must have a layout, a decoder, a schema
and a BPF program. (The C side is checked against the compiler in
tests/integration/test_layout.py.)
"""

from __future__ import annotations

import json
import os
import re
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producer import config, resources
from producer.config import EVENT_TYPES
from producer.errors import DecodeError
from producer.records import abi, catalog, codec, file_open, process, process_exec, tcp
from producer.records.common import DecodeContext
from tests.support.records import (
    BOUNDARY,
    BUILDERS,
    CTX,
    exec_record,
    exit_record,
    fork_record,
    open_record,
    tcp_record,
)

OFFSET = 1_700_000_000_000_000_000
SCHEMAS = {t: codec.load_schema(t) for t in catalog.STREAM_TYPES}


def decode(event_type: str, raw: bytes, cpu: int = 0, ctx: DecodeContext = CTX) -> dict[str, Any]:
    return catalog.DECODERS[event_type](raw, cpu, ctx, OFFSET)


# -- every event type ----------------------------------------------------------------------------


def test_every_event_type_has_a_layout_decoder_schema_and_program() -> None:
    src = (resources.data_dir("bpf") / resources.BPF_SOURCE).read_text()
    for t in EVENT_TYPES:
        assert t in catalog.EVENT_TYPE_IDS
        assert (resources.data_dir("schemas") / f"{t}.avsc").is_file()
        assert f"EKP_ENABLE_{t.upper()}" in src, t
        if t in catalog.STREAM_TYPES:
            assert t in catalog.DECODERS and t in catalog.LAYOUTS
            e = catalog.BY_NAME[t]
            declare = "BPF_PERF_OUTPUT" if e.buffer is catalog.Buffer.PERF else "BPF_RINGBUF_OUTPUT"
            assert f"{declare}({e.perf_table}" in src, t
    assert set(catalog.STREAM_TYPES) | {"syscall_counts"} == set(EVENT_TYPES)
    # the kernel's type ids are the ones bpf/events.h defines
    header = (resources.data_dir("bpf") / "events.h").read_text()
    for t, i in catalog.EVENT_TYPE_IDS.items():
        assert re.search(rf"#define EKP_EVENT_{t.upper()} {i}\b", header), t


@pytest.mark.parametrize("event_type", catalog.STREAM_TYPES)
def test_schema_and_decoder_agree_field_by_field(event_type: str) -> None:
    rec = decode(event_type, BUILDERS[event_type]())
    avsc = json.loads((resources.data_dir("schemas") / f"{event_type}.avsc").read_text())
    names = [f["name"] for f in avsc["fields"]]
    assert set(names) == set(rec), set(names) ^ set(rec)
    assert len(names) == len(set(names))
    assert all(f.get("doc") for f in avsc["fields"]), "every field is documented"
    assert avsc["namespace"]
    assert '"int"' not in json.dumps(avsc), "kernel u32 values need long"
    codec.validate(rec, SCHEMAS[event_type])


def test_common_fields_are_the_same_in_every_schema() -> None:
    common = (
        "timestamp",
        "boot_ns",
        "host",
        "boot_id",
        "cpu",
        "seq",
        "pid",
        "tid",
        "ppid",
        "uid",
        "gid",
        "comm",
        "cgroup_id",
        "container_id",
    )
    kinds: dict[str, set[str]] = {}
    # processes is not an event of a process but an entry of the process table: a schema of its own
    for t in (t for t in catalog.STREAM_TYPES if t != "processes"):
        fields = {
            f["name"]: f
            for f in json.loads((resources.data_dir("schemas") / f"{t}.avsc").read_text())["fields"]
        }
        for name in common:
            assert name in fields, (t, name)
            kinds.setdefault(name, set()).add(json.dumps(fields[name]["type"]))
    for name, types in kinds.items():
        # tcp records may not know the socket's process: those fields alone are nullable there
        assert len(types) <= 2 and all("long" in t or "string" in t for t in types), (name, types)


U32 = 0xFFFFFFFF


@pytest.mark.parametrize("event_type", catalog.STREAM_TYPES)
def test_boundary_values_round_trip(event_type: str) -> None:
    raw = BUILDERS[event_type](**BOUNDARY)
    rec = decode(event_type, raw)
    codec.validate(rec, SCHEMAS[event_type])
    framed = codec.Encoder(SCHEMAS[event_type]).encode(rec)
    back = codec.decode(framed, codec.load_all())[1]
    assert back["uid"] == U32 and back["seq"] == 2**63 - 1 and back["cgroup_id"] == 2**63 - 1


@pytest.mark.parametrize("event_type", catalog.STREAM_TYPES)
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"type_id": 99}, "type 99"),
        ({"cpu": 1}, "cpu 1"),
        ({"pid": 0}, "out of range"),
        ({"tid": abi.PID_MAX_LIMIT + 1}, "out of range"),
        ({"ppid": 2**31}, "out of range"),
        ({"task_flags": 0x80}, "unknown task flags"),
        ({"seq": 2**63}, "Avro long range"),
        ({"comm": b"x" * 16}, "comm: not NUL-terminated"),
        ({"start_ns": 0}, "identity times"),
        ({"boot_ns": 1000, "start_ns": 2000}, "identity times"),  # started after its own record
        ({"start_ns": 1000, "parent_start_ns": 2000}, "identity times"),  # parent younger than its child
        # the same checks on the path of records with a task flag
        ({"task_flags": abi.TASK_PPID_UNKNOWN, "pid": 0}, "out of range"),
        ({"task_flags": abi.TASK_PPID_UNKNOWN, "ppid": 2**31}, "out of range"),
        ({"task_flags": abi.TASK_PARENT_UNKNOWN, "start_ns": 0}, "identity times"),
        ({"task_flags": abi.TASK_PPID_UNKNOWN, "comm": b"x" * 16}, "comm: not NUL-terminated"),
        ({"task_flags": abi.TASK_PPID_UNKNOWN | 0x40}, "unknown task flags"),
    ],
)
def test_malformed_common_part(event_type: str, change: dict[str, Any], reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode(event_type, BUILDERS[event_type](**change))


@pytest.mark.parametrize("event_type", catalog.STREAM_TYPES)
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"type_id": 99}, "type 99"),
        ({"cpu": 1}, "cpu 1"),
        ({"seq": 2**63}, "Avro long range"),
        ({"boot_ns": 2**63}, "Avro long range"),
        ({"boot_ns": 1000}, "identity times"),  # the process started after this record
    ],
)
def test_malformed_header_of_a_process_already_met(
    event_type: str, change: dict[str, Any], reason: str
) -> None:
    # parse_common keeps a process's validated task fields (records/common.py); a later record of the
    # same process still has its own header checked
    task = {"start_ns": 5000, "parent_start_ns": 4000, "pid": 4242, "comm": b"again"}
    decode(event_type, BUILDERS[event_type](**task))
    with pytest.raises(DecodeError, match=reason):
        decode(event_type, BUILDERS[event_type](**{**task, **change}))


@pytest.mark.parametrize("event_type", catalog.STREAM_TYPES)
def test_truncated_records(event_type: str) -> None:
    raw = BUILDERS[event_type]()
    for cut in (0, 10, 30, abi.COMMON_SIZE, catalog.LAYOUTS[event_type].struct.size - 1):
        with pytest.raises(DecodeError):
            decode(event_type, raw[:cut])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(catalog.STREAM_TYPES), st.binary(max_size=800))
def test_fuzz_arbitrary_bytes_decode_or_raise_decode_error(event_type: str, raw: bytes) -> None:
    try:
        r = decode(event_type, raw)
    except DecodeError:
        return
    codec.validate(r, SCHEMAS[event_type])


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(catalog.STREAM_TYPES), st.data())
def test_fuzz_mutated_good_records(event_type: str, data: st.DataObject) -> None:
    raw = bytearray(BUILDERS[event_type]())
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        r = decode(event_type, bytes(raw[:cut]))
    except DecodeError:
        return
    codec.validate(r, SCHEMAS[event_type])
    codec.Encoder(SCHEMAS[event_type]).encode(r)


def test_non_utf8_is_kept_escaped_not_dropped() -> None:
    # A program or file named with invalid UTF-8 must not vanish from a security stream.
    r = decode(
        "process_exec", exec_record(filename=b"/tmp/\xff\xfeevil", argv=[b"\xffx", b"ok"], comm=b"ev\xc3")
    )
    assert r["filename"] == "/tmp/\\xff\\xfeevil"
    assert r["argv"] == ["\\xffx", "ok"]
    assert r["comm"] == "ev\\xc3"
    assert r["strings_escaped"] is True
    codec.validate(r, SCHEMAS["process_exec"])
    r = decode("file_open", open_record(path=b"/tmp/\xff"))
    assert r["path"] == "/tmp/\\xff" and r["strings_escaped"]


# -- process_exec --------------------------------------------------------------------------------


def test_exec_a_good_record() -> None:
    r = decode(
        "process_exec",
        exec_record(
            seq=9,
            cpu=1,
            pid=77,
            ppid=76,
            uid=1000,
            gid=100,
            argv=[b"ls", b"-l"],
            comm=b"ls",
            filename=b"/usr/bin/ls",
            boot_ns=2_000_000_000,
            cgroup_id=1234,
        ),
        cpu=1,
    )
    assert r["argv"] == ["ls", "-l"]
    assert (r["pid"], r["tid"], r["ppid"], r["uid"], r["gid"], r["cpu"], r["seq"]) == (
        77,
        77,
        76,
        1000,
        100,
        1,
        9,
    )
    assert (r["comm"], r["filename"], r["cgroup_id"], r["retval"]) == ("ls", "/usr/bin/ls", 1234, 0)
    assert r["timestamp"] == (2_000_000_000 + OFFSET) // 1000
    assert r["host"] == "node-1" and r["boot_id"] == "b00t"
    assert r["container_id"] is None  # filled by the reader's resolver
    assert not (r["argv_truncated"] or r["filename_truncated"] or r["argv_missing"] or r["strings_escaped"])


def test_exec_flags_map_to_booleans() -> None:
    r = decode(
        "process_exec",
        exec_record(flags=process_exec.EXEC_ARG_TRUNCATED | process_exec.EXEC_FILENAME_TRUNCATED),
    )
    assert r["argv_truncated"] and r["filename_truncated"] and not r["argv_missing"]
    r = decode(
        "process_exec",
        exec_record(
            flags=process_exec.EXEC_ARGV_MISSING, task_flags=abi.TASK_PPID_UNKNOWN, argv=[], filename=b""
        ),
    )
    assert r["argv_missing"] and r["ppid"] is None and r["argv"] == [] and r["filename"] == ""
    codec.validate(r, SCHEMAS["process_exec"])


def test_exec_failed_only_when_configured() -> None:
    with pytest.raises(DecodeError, match="retval"):
        decode("process_exec", exec_record(retval=-2))
    ctx = catalog.decode_context(
        config.validate({"events": {"process_exec": {"include_failed": True}}}), "h", "b"
    )
    assert decode("process_exec", exec_record(retval=-2), ctx=ctx)["retval"] == -2


EXEC_BAD = [
    (exec_record(flags=0x80), "unknown flags"),
    (exec_record(retval=5), "retval"),
    (exec_record(args_size=4000), "beyond the configured bounds|runs past"),
    (exec_record(args_size=200, pad=0), "runs past"),
    (exec_record(args_count=40), "beyond the configured bounds"),
    (exec_record(args_count=2), "2"),
    (exec_record(args_count=1, argv=[]), "no bytes"),
    (exec_record(argv=[b"a" * 200]), "limit 127"),
    (exec_record(filename=b"y" * 256), "filename: not NUL-terminated"),
    (exec_record(task_flags=abi.TASK_OWNER_UNKNOWN), "owner-unknown flag"),
]


@pytest.mark.parametrize(("raw", "reason"), EXEC_BAD)
def test_exec_malformed(raw: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode("process_exec", raw)


def test_exec_argv_blob_must_end_in_nul() -> None:
    raw = bytearray(exec_record(argv=[b"abc"]))
    raw[process_exec.EXEC.struct.size + 3] = ord("x")
    with pytest.raises(DecodeError, match="not NUL-terminated"):
        decode("process_exec", bytes(raw))


# -- process_exit, process_fork ------------------------------------------------------------------


def test_exit_code_signal_and_lifetime() -> None:
    r = decode("process_exit", exit_record(exit_code=7, fork_ns=1_000, boot_ns=5_000))
    assert (r["exit_code"], r["signal"], r["lifetime_ns"]) == (7, None, 4_000)
    assert r["start_time"] == (1_000 + OFFSET) // 1000
    r = decode("process_exit", exit_record(signal=9, flags=process.EXIT_SIGNALED))
    assert (r["exit_code"], r["signal"], r["signal_name"], r["lifetime_ns"]) == (None, 9, "SIGKILL", None)
    r = decode("process_exit", exit_record(signal=40, flags=process.EXIT_SIGNALED))
    assert r["signal_name"].startswith("SIGRT")
    for bad, reason in [
        (exit_record(flags=process.EXIT_CODE_KNOWN | process.EXIT_SIGNALED), "bad flags"),
        (exit_record(exit_code=300), "exit code 300"),
        (exit_record(signal=0, flags=process.EXIT_SIGNALED), "signal 0"),
        (exit_record(fork_ns=9_000, boot_ns=5_000), "started after it exited"),
    ]:
        with pytest.raises(DecodeError, match=reason):
            decode("process_exit", bad)


def test_fork() -> None:
    r = decode("process_fork", fork_record(pid=100, child_pid=101, comm=b"bash"))
    assert (r["pid"], r["child_pid"], r["comm"]) == (100, 101, "bash")
    with pytest.raises(DecodeError, match="child pid 0"):
        decode("process_fork", fork_record(child_pid=0))


# -- file_open -----------------------------------------------------------------------------------


def test_open_flags_decode() -> None:
    assert file_open.open_flag_names(os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC) == [
        "O_WRONLY",
        "O_CREAT",
        "O_TRUNC",
        "O_CLOEXEC",
    ]
    assert file_open.open_flag_names(os.O_RDONLY) == ["O_RDONLY"]
    # composite flags are named once, not as their parts
    assert file_open.open_flag_names(os.O_RDWR | os.O_SYNC) == ["O_RDWR", "O_SYNC"]
    assert file_open.open_flag_names(os.O_RDWR | os.O_TMPFILE) == ["O_RDWR", "O_TMPFILE"]
    assert file_open.open_flag_names(0x40000000)[-1] == "0x40000000"


def test_open_result_and_mode() -> None:
    r = decode(
        "file_open", open_record(path=b"/tmp/x", open_flags=os.O_WRONLY | os.O_CREAT, mode=0o640, ret=5)
    )
    assert (r["path"], r["fd"], r["errno"], r["error"], r["mode"]) == ("/tmp/x", 5, None, None, 0o640)
    assert r["flag_names"] == ["O_WRONLY", "O_CREAT"] and r["syscall"] == "openat"
    r = decode("file_open", open_record(ret=-2, mode=0o777, syscall=1))
    assert (r["fd"], r["errno"], r["error"], r["mode"], r["syscall"]) == (None, 2, "ENOENT", None, "openat2")
    for bad, reason in [
        (open_record(syscall=7), "syscall 7"),
        (open_record(flags=0x10), "flags 0x10"),
        (open_record(path_size=0), "path_size 0"),
        (open_record(path_size=200), "path_size 200"),
        (open_record(ret=-5000), "neither an fd nor an errno"),
        (open_record(open_flags=1 << 40), "out of range"),
    ]:
        with pytest.raises(DecodeError, match=reason):
            decode("file_open", bad)


# -- tcp -----------------------------------------------------------------------------------------


def test_tcp_addresses_and_lifetime() -> None:
    r = decode("tcp_connect", tcp_record(saddr="10.1.2.3", daddr="93.184.216.34", sport=50000, dport=443))
    assert (r["family"], r["saddr"], r["daddr"], r["sport"], r["dport"]) == (
        "inet",
        "10.1.2.3",
        "93.184.216.34",
        50000,
        443,
    )
    assert "lifetime_ns" not in r
    r = decode(
        "tcp_close",
        tcp_record(
            "tcp_close",
            family=tcp.AF_INET6,
            saddr="::1",
            daddr="2001:db8::7",
            direction=2,
            established_ns=1_000,
            boot_ns=9_000,
        ),
    )
    assert (r["family"], r["saddr"], r["daddr"], r["direction"], r["lifetime_ns"]) == (
        "inet6",
        "::1",
        "2001:db8::7",
        "inbound",
        8_000,
    )
    codec.validate(r, SCHEMAS["tcp_close"])


def test_tcp_owner_unknown_is_null_not_root() -> None:
    r = decode(
        "tcp_accept",
        tcp_record("tcp_accept", pid=0, tid=0, uid=0, gid=0, comm=b"", task_flags=abi.TASK_OWNER_UNKNOWN),
    )
    assert (r["pid"], r["tid"], r["uid"], r["gid"], r["comm"], r["ppid"]) == (None,) * 6
    codec.validate(r, SCHEMAS["tcp_accept"])


def test_tcp_malformed() -> None:
    for bad, reason in [
        (tcp_record(family=3), "family 3"),
        (tcp_record(direction=0), "direction 0"),
        (tcp_record(established_ns=0), "established time"),
        (tcp_record(established_ns=10, boot_ns=5), "established time"),
    ]:
        with pytest.raises(DecodeError, match=reason):
            decode("tcp_connect", bad)


def test_peek_seq() -> None:
    assert abi.peek_seq(exec_record(seq=123)) == 123
    assert abi.peek_seq(b"short") is None
    assert abi.peek_seq(struct.pack("<QQII", 1, 2, 0, 0)) == 2
