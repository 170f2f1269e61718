"""bench.forward's pure parts: the events it forwards are real ones, and its table adds up."""

from __future__ import annotations

from bench.forward import Row, exec_record, messages, table
from producer.forward import formats
from producer.records import codec


def test_its_events_are_valid_process_exec_records_with_distinct_ids() -> None:
    schema = codec.load_schema("process_exec")
    schemas = codec.load_all()
    ids = set()
    for i, m in enumerate(messages(50)):
        codec.validate(exec_record(i), schema)
        s, value = codec.decode(m, schemas)
        assert s.name == "process_exec"
        ids.add(formats.event_id(s.name, value, ("t", 0, i)))
    assert len(ids) == 50


def test_table_rates() -> None:
    text = table([Row("jsonl", False, 100_000, 4.0, 2.5)])
    assert "| jsonl | no | 100000 | 4.00 | 25,000 | 2.50 | 40,000 | 25.0 |" in text
