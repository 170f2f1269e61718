"""How a topic's messages look on the wire: the framing prefix, the Avro encoder and the headers.

One function for every producer of the collector — the readers (each event type), the drop reports
and syscall_counts — so they cannot disagree: the schema's single-object header, or the schema
registry's (Confluent) header once the schema is registered, and the Kafka headers a consumer can
route on without decoding (event_type, content-type, and whatever the caller adds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..records import codec
from .sink import Headers


@dataclass(frozen=True)
class Framing:
    encoder: codec.Encoder  # record dict -> framed bytes (the reference path)
    prefix: bytes  # what precedes every Avro body (the readers' fast path writes bodies after it)
    headers: Headers


def framing(schema: str, schema_ids: Mapping[str, int], **extra_headers: str) -> Framing:
    """The framing of messages of `schema` (an event type, or drop_report).

    `schema_ids`: the registry's id of each registered schema (empty without a registry: every
    message then carries the single-object header). Raises SchemaError if the schema is missing.
    """
    schema_id = schema_ids.get(schema)
    encoder = codec.Encoder(
        codec.load_schema(schema), header=None if schema_id is None else codec.confluent_header(schema_id)
    )
    headers: Headers = [
        ("event_type", schema.encode()),
        ("content-type", encoder.content_type),
        *((k, v.encode()) for k, v in extra_headers.items()),
    ]
    return Framing(encoder, encoder.header, headers)
