"""The event catalog is the one list of event types: every per-type table derives from it, and every
entry is complete (a record builder, a brief line, its C pieces)."""

from __future__ import annotations

import re
import tomllib

import pytest

from producer import config, resources
from producer.records import catalog, codec
from producer.records.catalog import Kind
from tests.support import ROOT
from tests.support.records import BUILDERS, CTX

OFFSET = 1_700_000_000_000_000_000


def test_the_tables_derive_from_the_catalog() -> None:
    names = [e.name for e in catalog.CATALOG]
    assert list(config.EVENT_TYPES) == names
    assert list(catalog.EVENT_TYPE_IDS) == names
    assert tuple(e.name for e in catalog.CATALOG if e.kind is Kind.STREAM) == catalog.STREAM_TYPES
    assert set(catalog.DECODERS) == set(catalog.LAYOUTS) == set(catalog.STREAM_TYPES)
    assert set(catalog.TRACEPOINTS) == set(names)
    assert set(BUILDERS) == set(catalog.STREAM_TYPES), "a new record layout needs its builder"


def test_every_layout_map_is_declared_in_the_bpf_sources() -> None:
    sources = "".join((resources.data_dir("bpf") / f).read_text() for f in resources.BPF_FILES)
    for map_name, layout in catalog.LAYOUT_MAPS.items():
        assert re.search(rf"BPF_ARRAY\({map_name}, struct {layout.c_struct}, 1\);", sources), map_name


@pytest.mark.parametrize("event_type", catalog.STREAM_TYPES)
def test_the_brief_line_of_what_a_consumer_reads(event_type: str) -> None:
    e = catalog.BY_NAME[event_type]
    schema = codec.load_schema(e.schema)
    framed = codec.Encoder(schema).encode(e.decode(BUILDERS[event_type](), 0, CTX, OFFSET))
    _, value = codec.decode(framed, codec.load_all())
    assert e.brief is not None and e.brief(value)


def test_kinds_are_an_enum_not_a_name() -> None:
    # the stream/aggregate split is the catalog's `kind`; config.py is the one place left that
    # compares names (it becomes a model built from the catalog in the pydantic merge)
    pattern = re.compile(r"""[!=]=\s*["']syscall_counts["']""")
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "producer").rglob("*.py")
        if p.name != "config.py" and pattern.search(p.read_text())
    ]
    assert offenders == []


def test_aggregates_have_no_record_codecs() -> None:
    with pytest.raises(TypeError, match="an aggregate has no record layout"):
        catalog.EventType(
            name="x", id=99, kind=Kind.AGGREGATE, doc="x", tracepoints=(), layout=catalog.LAYOUTS["tcp_close"]
        )
    with pytest.raises(TypeError, match="a stream needs"):
        catalog.EventType(name="x", id=99, kind=Kind.STREAM, doc="x", tracepoints=())


def test_every_package_is_in_the_wheel() -> None:
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "producer").rglob("__init__.py")}
    generated = {"producer.k8s.cri_v1"}  # the CRI stubs: setup.py generates them and adds the package
    assert (found - generated) | {"producer.bpf", "producer.schemas"} == set(packages)
