"""Avro encoding of records, and the two ways a message names its schema.

Without a schema registry each Kafka message must carry enough to find its
schema. The Avro spec's single-object encoding does that in 10 bytes::

    C3 01 | CRC-64-AVRO fingerprint of the schema's canonical form (8 bytes, LE) | Avro binary body

so any consumer that holds schemas/ can decode any message (see `decode`).
With a schema registry (schema_registry.url) messages use the registry's
own framing instead, which every Confluent-compatible deserializer expects::

    00 | schema id (4 bytes, big-endian) | Avro binary body

The choice is made once, by the header an Encoder is given; `decode` reads both.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import fastavro.schema
import fastavro.validation

from ..errors import SchemaError
from ..resources import data_dir

MAGIC = b"\xc3\x01"
HEADER_LEN = 10
CONTENT_TYPE = b"application/vnd.apache.avro+single-object"
CONFLUENT_MAGIC = b"\x00"
CONFLUENT_HEADER_LEN = 5
CONFLUENT_CONTENT_TYPE = b"application/vnd.confluent.avro"


@dataclass(frozen=True)
class Schema:
    name: str  # event type, i.e. the file stem
    parsed: dict[str, Any]
    canonical: str
    fingerprint: bytes  # 8 bytes, little-endian, as written in the frame
    text: str  # the schema as JSON, logical types and docs included: what a registry is given

    @property
    def header(self) -> bytes:
        return MAGIC + self.fingerprint


def load_schema(name: str, directory: Path | None = None) -> Schema:
    """schemas/<name>.avsc, parsed. Raises SchemaError naming the file."""
    path = (directory or data_dir("schemas")) / f"{name}.avsc"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SchemaError(f"schema {path}: cannot read ({e.strerror}); is the install complete?") from None
    return parse_schema(name, text, str(path))


def parse_schema(name: str, text: str, where: str) -> Schema:
    """Schema JSON -> Schema (from a file, or from a registry). Raises SchemaError naming `where`."""
    try:
        raw = json.loads(text)
        parsed = fastavro.parse_schema(raw)
    except (ValueError, fastavro.schema.SchemaParseException) as e:
        raise SchemaError(f"schema {where}: invalid ({e})") from None
    if not isinstance(parsed, dict):
        raise SchemaError(f"schema {where}: the top level must be a record")
    canonical = fastavro.schema.to_parsing_canonical_form(raw)
    # fastavro prints the CRC-64-AVRO of the canonical form as the hex of its
    # little-endian bytes, which is the order the frame wants.
    fp = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))
    compact = json.dumps(raw, separators=(",", ":"), sort_keys=True)
    return Schema(name=name, parsed=parsed, canonical=canonical, fingerprint=fp, text=compact)


def load_all(directory: Path | None = None) -> dict[bytes, Schema]:
    """Every schema in schemas/, current and released (messages written by older versions), by fingerprint."""
    d = directory or data_dir("schemas")
    out: dict[bytes, Schema] = {}
    for path in sorted(d.glob("released/*/v*.avsc")):
        s = load_schema(path.stem, path.parent)
        out[s.fingerprint] = dataclasses.replace(s, name=path.parent.name)
    for path in sorted(d.glob("*.avsc")):
        s = load_schema(path.stem, d)
        out[s.fingerprint] = s
    if not out:
        raise SchemaError(f"schemas: no .avsc files in {d}")
    return out


def confluent_header(schema_id: int) -> bytes:
    """The Confluent wire format's 5-byte prefix for a registry's schema id."""
    if not 0 <= schema_id <= 0x7FFFFFFF:
        raise ValueError(f"schema id {schema_id} does not fit the Confluent wire format")
    return CONFLUENT_MAGIC + schema_id.to_bytes(4, "big")


class Encoder:
    """Record dict -> framed Avro bytes for one schema. Not thread-safe: one per reader.

    `header` picks the framing: None for single-object encoding, or
    confluent_header(id) once the schema is registered.
    """

    def __init__(self, schema: Schema, header: bytes | None = None) -> None:
        self.schema = schema
        self._header = schema.header if header is None else header
        self.content_type = CONTENT_TYPE if header is None else CONFLUENT_CONTENT_TYPE
        self._buf = io.BytesIO()

    @property
    def header(self) -> bytes:
        """The framing prefix of every message (the readers' fast path writes bodies after it)."""
        return self._header

    def encode(self, record: dict[str, Any]) -> bytes:
        """Raises ValueError/TypeError/OverflowError on a record that does not fit the schema."""
        buf = self._buf
        buf.seek(0)
        buf.truncate()
        fastavro.schemaless_writer(buf, self.schema.parsed, record)
        return self._header + buf.getvalue()


def validate(record: dict[str, Any], schema: Schema) -> None:
    """Strict check (fastavro's writer does not range-check ints; Java and Spark readers do)."""
    fastavro.validation.validate(record, schema.parsed, raise_errors=True, strict=True)


def decode(
    value: bytes,
    schemas: dict[bytes, Schema],
    by_id: Callable[[int], Schema | None] | None = None,
) -> tuple[Schema, dict[str, Any]]:
    """A framed message -> (its schema, the record), in either framing.

    `schemas` are by fingerprint (single-object); `by_id` looks up a registry's
    schema id (Confluent wire format). Raises ValueError if it is not one of ours.
    """
    if len(value) >= HEADER_LEN and value[:2] == MAGIC:
        schema = schemas.get(bytes(value[2:HEADER_LEN]))
        if schema is None:
            raise ValueError(f"unknown schema fingerprint {bytes(value[2:HEADER_LEN]).hex()}")
        body = value[HEADER_LEN:]
    elif len(value) >= CONFLUENT_HEADER_LEN and value[:1] == CONFLUENT_MAGIC:
        schema_id = int.from_bytes(value[1:CONFLUENT_HEADER_LEN], "big")
        if by_id is None:
            raise ValueError(
                f"Confluent wire format (schema id {schema_id}) and no schema registry to ask "
                "(give a config with schema_registry.url)"
            )
        found = by_id(schema_id)
        if found is None:
            raise ValueError(f"unknown schema id {schema_id}")
        schema, body = found, value[CONFLUENT_HEADER_LEN:]
    else:
        raise ValueError("neither Avro single-object encoding (C3 01) nor the Confluent wire format (00)")
    record = fastavro.schemaless_reader(io.BytesIO(body), schema.parsed, None)
    assert isinstance(record, dict)
    return schema, record


def json_default(o: Any) -> Any:
    """json.dumps(default=...) for decoded records: timestamps as ISO 8601, bytes as hex."""
    if isinstance(o, dt.datetime):
        return o.isoformat()
    if isinstance(o, bytes):
        return o.hex()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def field_reader(schema: Schema, prefix_len: int, name: str) -> Callable[[bytes], Any]:
    """Reads one field of framed messages of `schema` whose framing prefix is `prefix_len` bytes (the
    full decode: for the rare message that must be told apart after it left the reader's hands)."""
    parsed = schema.parsed

    def read(value: bytes) -> Any:
        record = fastavro.schemaless_reader(io.BytesIO(value[prefix_len:]), parsed, None)
        assert isinstance(record, dict)
        return record[name]

    return read
