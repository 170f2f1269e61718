"""The decoder of raw process_exec records: good records, every kind of bad one, and a fuzz.

Also the schema side of "define each event once": the decoder's output and
schemas/process_exec.avsc must agree field by field, at the boundary values
the kernel can produce. (The C side is checked against the compiler in
tests/integration/test_layout.py.)
"""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producer import codec, events
from producer.errors import DecodeError
from producer.events import DecodeContext, decode_process_exec
from tests.unit.conftest import CTX
from tests.unit.rawrecords import exec_record

OFFSET = 1_700_000_000_000_000_000
SCHEMA = codec.load_schema("process_exec")


def decode(raw: bytes, cpu: int = 0, ctx: DecodeContext = CTX) -> dict:
    return decode_process_exec(raw, cpu, ctx, OFFSET)


def test_a_good_record() -> None:
    r = decode(
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
    assert (r["pid"], r["ppid"], r["uid"], r["gid"], r["cpu"], r["seq"]) == (77, 76, 1000, 100, 1, 9)
    assert (r["comm"], r["filename"], r["cgroup_id"], r["retval"]) == ("ls", "/usr/bin/ls", 1234, 0)
    assert r["timestamp"] == (2_000_000_000 + OFFSET) // 1000
    assert r["host"] == "node-1" and r["boot_id"] == "b00t"
    assert not (r["argv_truncated"] or r["filename_truncated"] or r["argv_missing"] or r["strings_escaped"])
    codec.validate(r, SCHEMA)


def test_flags_map_to_booleans() -> None:
    r = decode(exec_record(flags=events.EXEC_ARG_TRUNCATED | events.EXEC_FILENAME_TRUNCATED))
    assert r["argv_truncated"] and r["filename_truncated"] and not r["argv_missing"]
    r = decode(exec_record(flags=events.EXEC_ARGV_MISSING | events.EXEC_PPID_UNKNOWN, argv=[], filename=b""))
    assert r["argv_missing"] and r["ppid"] is None and r["argv"] == [] and r["filename"] == ""
    codec.validate(r, SCHEMA)


def test_failed_execs_only_when_configured() -> None:
    with pytest.raises(DecodeError, match="retval"):
        decode(exec_record(retval=-2))
    ctx = DecodeContext(host="h", boot_id="b", max_args=32, max_arg_len=128, include_failed=True)
    assert decode(exec_record(retval=-2), ctx=ctx)["retval"] == -2


def test_non_utf8_is_kept_escaped_not_dropped() -> None:
    # A program named with invalid UTF-8 must not vanish from a security stream.
    r = decode(exec_record(filename=b"/tmp/\xff\xfeevil", argv=[b"\xffx", b"ok"], comm=b"ev\xc3"))
    assert r["filename"] == "/tmp/\\xff\\xfeevil"
    assert r["argv"] == ["\\xffx", "ok"]
    assert r["comm"] == "ev\\xc3"
    assert r["strings_escaped"] is True
    codec.validate(r, SCHEMA)


def test_u32_boundaries_fit_the_schema() -> None:
    r = decode(
        exec_record(
            uid=0xFFFFFFFF,
            gid=0xFFFFFFFF,
            pid=events.PID_MAX_LIMIT,
            ppid=events.PID_MAX_LIMIT,
            seq=2**63 - 1,
            cgroup_id=2**63 - 1,
            boot_ns=2**62,
        )
    )
    codec.validate(r, SCHEMA)
    framed = codec.Encoder(SCHEMA).encode(r)
    assert codec.decode(framed, codec.load_all())[1]["uid"] == 0xFFFFFFFF


BAD = [
    (b"", "truncated"),
    (exec_record()[:100], "truncated"),
    (exec_record(type_id=3), "type 3"),
    (exec_record(cpu=1), "cpu 1"),
    (exec_record(flags=0x80), "unknown flags"),
    (exec_record(pid=0), "out of range"),
    (exec_record(pid=events.PID_MAX_LIMIT + 1), "out of range"),
    (exec_record(ppid=2**31), "out of range"),
    (exec_record(seq=2**63), "Avro long range"),
    (exec_record(cgroup_id=2**64 - 1), "Avro long range"),
    (exec_record(retval=5), "retval"),
    (exec_record(args_size=4000), "beyond the configured bounds|runs past"),
    (exec_record(args_size=200, pad=0), "runs past"),
    (exec_record(args_count=40), "beyond the configured bounds"),
    (exec_record(args_count=2), "2"),
    (exec_record(args_count=1, argv=[]), "no bytes"),
    (exec_record(argv=[b"a" * 200]), "limit 127"),
    (exec_record(comm=b"x" * 16), "comm: not NUL-terminated"),
    (exec_record(filename=b"y" * 256), "filename: not NUL-terminated"),
]


@pytest.mark.parametrize(("raw", "reason"), BAD)
def test_malformed_records_raise_decode_error(raw: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode(raw)


def test_argv_blob_must_end_in_nul() -> None:
    raw = bytearray(exec_record(argv=[b"abc"]))
    fixed = events.PROCESS_EXEC.struct.size
    raw[fixed + 3] = ord("x")
    with pytest.raises(DecodeError, match="not NUL-terminated"):
        decode(bytes(raw))


def test_schema_and_decoder_agree_field_by_field(exec_dict: dict) -> None:
    avsc = json.loads((codec.project_dir("schemas") / "process_exec.avsc").read_text())
    names = [f["name"] for f in avsc["fields"]]
    assert set(names) == set(exec_dict), set(names) ^ set(exec_dict)
    assert all(f.get("doc") for f in avsc["fields"]), "every field is documented"
    assert avsc["namespace"]
    # No Avro int anywhere: kernel u32 values need long.
    assert '"int"' not in json.dumps(avsc)


def test_every_mirrored_c_integer_is_an_avro_long() -> None:
    avsc = json.loads((codec.project_dir("schemas") / "process_exec.avsc").read_text())
    types = {f["name"]: f["type"] for f in avsc["fields"]}
    for c_name, fmt in events.PROCESS_EXEC.fields:
        name = c_name.removeprefix("hdr.")
        if fmt in ("I", "Q", "i") and name in types:
            t = types[name]
            assert t == "long" or (isinstance(t, list) and "long" in t) or t.get("type") == "long", (name, t)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=800))
def test_fuzz_arbitrary_bytes_decode_or_raise_decode_error(raw: bytes) -> None:
    try:
        r = decode(raw)
    except DecodeError:
        return
    codec.validate(r, SCHEMA)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_fuzz_mutated_good_records(data: st.DataObject) -> None:
    raw = bytearray(exec_record(argv=[b"a", b"bb", b"ccc"]))
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        r = decode(bytes(raw[:cut]))
    except DecodeError:
        return
    codec.validate(r, SCHEMA)
    codec.Encoder(SCHEMA).encode(r)


def test_peek_seq() -> None:
    assert events.peek_seq(exec_record(seq=123)) == 123
    assert events.peek_seq(b"short") is None
    assert events.peek_seq(struct.pack("<QQII", 1, 2, 0, 0)) == 2
