"""Avro encoding of records, framed as Avro single-object encoding.

Without a schema registry each Kafka message must carry enough to find its
schema. The Avro spec's single-object encoding does that in 10 bytes::

    C3 01 | CRC-64-AVRO fingerprint of the schema's canonical form (8 bytes, LE) | Avro binary body

so any consumer that holds schemas/ can decode any message (see `decode`).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import fastavro.schema
import fastavro.validation

from .errors import SchemaError

MAGIC = b"\xc3\x01"
HEADER_LEN = 10
CONTENT_TYPE = b"application/vnd.apache.avro+single-object"


def project_dir(name: str) -> Path:
    """bpf/ or schemas/: from $EKP_<NAME>_DIR, else next to the package (checkout or editable install)."""
    env = os.environ.get(f"EKP_{name.upper()}_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / name


@dataclass(frozen=True)
class Schema:
    name: str  # event type, i.e. the file stem
    parsed: dict[str, Any]
    canonical: str
    fingerprint: bytes  # 8 bytes, little-endian, as written in the frame

    @property
    def header(self) -> bytes:
        return MAGIC + self.fingerprint


def load_schema(name: str, directory: Path | None = None) -> Schema:
    """schemas/<name>.avsc, parsed. Raises SchemaError naming the file."""
    path = (directory or project_dir("schemas")) / f"{name}.avsc"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        parsed = fastavro.parse_schema(raw)
    except OSError as e:
        raise SchemaError(f"schema {path}: cannot read ({e.strerror}); is EKP_SCHEMAS_DIR right?") from None
    except (ValueError, fastavro.schema.SchemaParseException) as e:
        raise SchemaError(f"schema {path}: invalid ({e})") from None
    canonical = fastavro.schema.to_parsing_canonical_form(raw)
    # fastavro prints the CRC-64-AVRO of the canonical form as the hex of its
    # little-endian bytes, which is the order the frame wants.
    fp = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))
    if not isinstance(parsed, dict):
        raise SchemaError(f"schema {path}: the top level must be a record")
    return Schema(name=name, parsed=parsed, canonical=canonical, fingerprint=fp)


def load_all(directory: Path | None = None) -> dict[bytes, Schema]:
    """Every schema in schemas/, current and released (messages written by older versions), by fingerprint."""
    d = directory or project_dir("schemas")
    out: dict[bytes, Schema] = {}
    for path in sorted(d.glob("released/*/v*.avsc")):
        s = load_schema(path.stem, path.parent)
        out[s.fingerprint] = Schema(path.parent.name, s.parsed, s.canonical, s.fingerprint)
    for path in sorted(d.glob("*.avsc")):
        s = load_schema(path.stem, d)
        out[s.fingerprint] = s
    if not out:
        raise SchemaError(f"schemas: no .avsc files in {d}")
    return out


class Encoder:
    """Record dict -> framed Avro bytes for one schema. Not thread-safe: one per reader."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._header = schema.header
        self._buf = io.BytesIO()

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


def decode(value: bytes, schemas: dict[bytes, Schema]) -> tuple[Schema, dict[str, Any]]:
    """A framed message -> (its schema, the record). Raises ValueError if it is not one of ours."""
    if len(value) < HEADER_LEN or value[:2] != MAGIC:
        raise ValueError("not Avro single-object encoding (no C3 01 marker)")
    schema = schemas.get(bytes(value[2:HEADER_LEN]))
    if schema is None:
        raise ValueError(f"unknown schema fingerprint {bytes(value[2:HEADER_LEN]).hex()}")
    record = fastavro.schemaless_reader(io.BytesIO(value[HEADER_LEN:]), schema.parsed, None)
    assert isinstance(record, dict)
    return schema, record
