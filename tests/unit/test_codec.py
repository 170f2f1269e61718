"""Avro single-object framing, fingerprints, and the schemas as files."""

from __future__ import annotations

import json
import struct

import fastavro
import pytest

from producer import resources
from producer.errors import SchemaError
from producer.records import codec

_EMPTY = 0xC15D213AA4D7A795


def _crc64_avro(data: bytes) -> int:
    """The Rabin fingerprint of the Avro spec, written out independently of fastavro."""
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        table.append(fp & 0xFFFFFFFFFFFFFFFF)
    fp = _EMPTY
    for b in data:
        fp = (fp >> 8) ^ table[(fp ^ b) & 0xFF]
    return fp


def test_independent_crc_matches_the_spec_vector() -> None:
    # Avro's own test vector for the schema "null"
    assert struct.unpack("<q", struct.pack("<Q", _crc64_avro(b'"null"')))[0] == 7195948357588979594


@pytest.mark.parametrize("name", ["process_exec", "drop_report"])
def test_frame_fingerprint_matches_the_schema_file(name: str) -> None:
    s = codec.load_schema(name)
    raw = json.loads((resources.data_dir("schemas") / f"{name}.avsc").read_text())
    canonical = fastavro.schema.to_parsing_canonical_form(raw)
    assert s.canonical == canonical
    assert s.fingerprint == struct.pack("<Q", _crc64_avro(canonical.encode()))
    assert s.header == b"\xc3\x01" + s.fingerprint


def test_encode_then_decode_round_trip(exec_dict: dict) -> None:
    schema = codec.load_schema("process_exec")
    framed = codec.Encoder(schema).encode(exec_dict)
    assert framed[:2] == b"\xc3\x01"
    assert framed[2:10] == schema.fingerprint
    got_schema, record = codec.decode(framed, codec.load_all())
    assert got_schema.name == "process_exec"
    assert record["argv"] == exec_dict["argv"]
    assert record["pid"] == exec_dict["pid"]
    assert int(record["timestamp"].timestamp() * 1_000_000) == exec_dict["timestamp"]


def test_encoder_reuses_its_buffer_without_leaking_bytes(exec_dict: dict) -> None:
    enc = codec.Encoder(codec.load_schema("process_exec"))
    long_one = enc.encode({**exec_dict, "argv": ["x" * 500]})
    short_one = enc.encode(exec_dict)
    assert len(short_one) < len(long_one)
    assert codec.decode(short_one, codec.load_all())[1]["argv"] == exec_dict["argv"]


@pytest.mark.parametrize("value", [b"", b"\xc3", b"\x00\x01" + bytes(8) + b"x", b"\xc3\x01" + bytes(8)])
def test_decode_rejects_foreign_messages(value: bytes) -> None:
    with pytest.raises(ValueError):
        codec.decode(value, codec.load_all())


def test_missing_and_invalid_schema_files(tmp_path) -> None:
    with pytest.raises(SchemaError, match="cannot read"):
        codec.load_schema("nope", tmp_path)
    (tmp_path / "bad.avsc").write_text(
        '{"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]}'
    )
    with pytest.raises(SchemaError, match="invalid"):
        codec.load_schema("bad", tmp_path)
    with pytest.raises(SchemaError, match=r"no \.avsc"):
        codec.load_all(tmp_path / "empty")


def test_confluent_header_is_zero_then_the_id_big_endian() -> None:
    assert codec.confluent_header(1) == b"\x00\x00\x00\x00\x01"
    assert codec.confluent_header(0x01020304) == b"\x00\x01\x02\x03\x04"
    for bad in (-1, 2**31):
        with pytest.raises(ValueError):
            codec.confluent_header(bad)


def test_confluent_framing_round_trip(exec_dict: dict) -> None:
    schema = codec.load_schema("process_exec")
    single = codec.Encoder(schema)
    confluent = codec.Encoder(schema, header=codec.confluent_header(42))
    assert single.content_type == b"application/vnd.apache.avro+single-object"
    assert confluent.content_type == b"application/vnd.confluent.avro"
    framed = confluent.encode(exec_dict)
    # same Avro body, only the prefix differs
    assert framed[:5] == b"\x00\x00\x00\x00\x2a" and framed[5:] == single.encode(exec_dict)[10:]
    asked: list[int] = []

    def by_id(i: int) -> codec.Schema | None:
        asked.append(i)
        return schema if i == 42 else None

    got, record = codec.decode(framed, codec.load_all(), by_id)
    assert got is schema and record["argv"] == exec_dict["argv"] and asked == [42]
    # single-object messages never need the registry
    assert codec.decode(single.encode(exec_dict), codec.load_all(), by_id)[1]["pid"] == exec_dict["pid"]
    assert asked == [42]
    with pytest.raises(ValueError, match="unknown schema id 7"):
        codec.decode(codec.confluent_header(7) + framed[5:], codec.load_all(), by_id)
    with pytest.raises(ValueError, match=r"schema id 42\) and no schema registry"):
        codec.decode(framed, codec.load_all())


@pytest.mark.parametrize("name", ["process_exec", "drop_report"])
def test_the_registered_text_is_the_whole_schema(name: str) -> None:
    s = codec.load_schema(name)
    again = codec.parse_schema(name, s.text, "test")
    assert again.canonical == s.canonical and again.fingerprint == s.fingerprint
    if name == "process_exec":
        assert '"logicalType":"timestamp-micros"' in s.text  # the canonical form would drop it


def test_messages_written_with_a_released_version_still_decode() -> None:
    v1 = codec.load_schema("v1", resources.data_dir("schemas") / "released" / "process_exec")
    old = {
        "timestamp": 1,
        "boot_ns": 1,
        "host": "h",
        "boot_id": "b",
        "cpu": 0,
        "seq": 0,
        "pid": 1,
        "ppid": None,
        "uid": 0,
        "gid": 0,
        "comm": "sh",
        "filename": "/bin/sh",
        "argv": ["sh"],
        "argv_truncated": False,
        "filename_truncated": False,
        "argv_missing": False,
        "strings_escaped": False,
        "retval": 0,
        "cgroup_id": 1,
    }
    schema, record = codec.decode(codec.Encoder(v1).encode(old), codec.load_all())
    assert schema.name == "process_exec" and record["argv"] == ["sh"]
