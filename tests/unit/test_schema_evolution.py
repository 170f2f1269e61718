"""Schemas evolve safely: every current schema can read what every released version wrote.

Released versions live in schemas/released/<type>/v<N>.avsc. A change to
schemas/<type>.avsc must stay backward compatible with all of them (Avro
schema resolution with the new schema as reader), so a consumer upgraded to
the new schema keeps reading old messages and a producer upgrade never
breaks a downstream job. Releasing a version = copying the current file to
the next v<N>.avsc.
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest

from producer import resources

SCHEMAS = resources.data_dir("schemas")
CURRENT = sorted(p.stem for p in SCHEMAS.glob("*.avsc"))

_PROMOTIONS = {
    ("int", "long"),
    ("int", "float"),
    ("int", "double"),
    ("long", "float"),
    ("long", "double"),
    ("float", "double"),
    ("string", "bytes"),
    ("bytes", "string"),
}


def _name(t: Any) -> str:
    if isinstance(t, dict):
        return (
            str(t.get("logicalType", t["type"]))
            if t["type"] not in ("record", "array", "map", "enum", "fixed")
            else str(t["type"])
        )
    return "union" if isinstance(t, list) else str(t)


def incompatibilities(reader: Any, writer: Any, path: str = "") -> list[str]:
    """Why `reader` cannot read data written with `writer` (empty: it can)."""
    if isinstance(writer, list):  # every branch the writer may have used must resolve
        return [p for w in writer for p in incompatibilities(reader, w, path)]
    if isinstance(reader, list):
        if any(not incompatibilities(r, writer, path) for r in reader):
            return []
        return [f"{path or '.'}: writer type {_name(writer)} matches no branch of the reader's union"]
    rk, wk = _base(reader), _base(writer)
    if rk != wk and (wk, rk) not in _PROMOTIONS:
        return [f"{path or '.'}: {wk} written, {rk} read"]
    if rk == "record":
        wfields = {f["name"]: f for f in writer["fields"]}
        out = []
        for f in reader["fields"]:
            if f["name"] in wfields:
                out += incompatibilities(f["type"], wfields[f["name"]]["type"], f"{path}.{f['name']}")
            elif "default" not in f:
                out.append(f"{path}.{f['name']}: new field without a default")
        return out
    if rk == "array":
        return incompatibilities(reader["items"], writer["items"], path + "[]")
    if rk == "map":
        return incompatibilities(reader["values"], writer["values"], path + "{}")
    if rk == "enum":
        missing = set(writer["symbols"]) - set(reader["symbols"])
        return (
            [f"{path}: enum symbols {sorted(missing)} removed"] if missing and "default" not in reader else []
        )
    if (
        isinstance(reader, dict)
        and isinstance(writer, dict)
        and reader.get("logicalType") != writer.get("logicalType")
    ):
        return [f"{path}: logical type {writer.get('logicalType')} written, {reader.get('logicalType')} read"]
    return []


def _base(t: Any) -> str:
    return str(t["type"]) if isinstance(t, dict) else str(t)


def _sample(t: Any) -> Any:
    """A value of schema type `t` (non-null union branch first, so every field is exercised)."""
    if isinstance(t, list):
        return _sample(next((b for b in t if b != "null"), "null"))
    kind = _base(t)
    if kind == "record":
        return {f["name"]: _sample(f["type"]) for f in t["fields"]}
    return {
        "null": None,
        "boolean": True,
        "int": 7,
        "long": 2**40,
        "float": 1.5,
        "double": 2.5,
        "string": "s",
        "bytes": b"b",
        "array": [_sample(t["items"])] if kind == "array" else None,
        "map": {"k": _sample(t["values"])} if kind == "map" else None,
    }.get(kind)


def released(name: str) -> list[Path]:
    return sorted((SCHEMAS / "released" / name).glob("v*.avsc"), key=lambda p: int(p.stem[1:]))


@pytest.mark.parametrize("name", CURRENT)
def test_every_schema_has_a_released_version(name: str) -> None:
    versions = released(name)
    assert versions, f"schemas/released/{name}/v1.avsc is missing: release the schema when it is added"
    assert [int(p.stem[1:]) for p in versions] == list(range(1, len(versions) + 1))


@pytest.mark.parametrize("name", CURRENT)
def test_current_schema_reads_every_released_version(name: str) -> None:
    current = json.loads((SCHEMAS / f"{name}.avsc").read_text())
    reader = fastavro.parse_schema(copy.deepcopy(current))
    for path in released(name):
        old = json.loads(path.read_text())
        assert incompatibilities(current, old) == [], f"{name} vs {path.name}"
        # and for real: bytes written with the old schema, read with the new one
        writer = fastavro.parse_schema(copy.deepcopy(old))
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, writer, _sample(old))
        buf.seek(0)
        fastavro.schemaless_reader(buf, writer, reader)


def test_released_versions_are_frozen_copies_or_predecessors() -> None:
    # the newest release of an unchanged schema is the schema itself: nothing unreleased ships silently
    for name in CURRENT:
        newest = json.loads(released(name)[-1].read_text())
        current = json.loads((SCHEMAS / f"{name}.avsc").read_text())
        assert newest == current, (
            f"{name}.avsc changed since {released(name)[-1].name}: release it as a new version"
        )


def test_the_check_catches_breaking_changes() -> None:
    old = json.loads((SCHEMAS / "process_exec.avsc").read_text())
    no_default = copy.deepcopy(old)
    no_default["fields"].append({"name": "cwd", "type": "string"})
    assert incompatibilities(no_default, old) == [".cwd: new field without a default"]
    retyped = copy.deepcopy(old)
    next(f for f in retyped["fields"] if f["name"] == "pid")["type"] = "string"
    assert incompatibilities(retyped, old) == [".pid: long written, string read"]
    narrowed = copy.deepcopy(old)
    next(f for f in narrowed["fields"] if f["name"] == "ppid")["type"] = "long"
    assert incompatibilities(narrowed, old) == [".ppid: null written, long read"]
    widened = copy.deepcopy(old)
    widened["fields"].append({"name": "cwd", "type": ["null", "string"], "default": None})
    assert incompatibilities(widened, old) == []
