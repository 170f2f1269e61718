"""`ebpf-producer tail`: messages of topics as JSON lines (or brief lines), decoded in either framing."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import Any

from .. import config
from ..errors import ProducerError
from ..kafka import registry
from ..kafka.consumer import BEGINNING, END, Message, TopicReader
from ..records import catalog, codec


def tail(args: argparse.Namespace) -> int:
    cfg = config.load(args.config) if args.config else config.validate({})
    servers = args.bootstrap_servers or cfg.kafka.bootstrap_servers
    schemas = codec.load_all()
    by_id = registry.lookup(cfg.schema_registry, schemas) if cfg.schema_registry.enabled else None
    reader = TopicReader.of(cfg.kafka, servers)
    try:
        known = reader.partitions()
        parts = {}
        for topic in args.topic:
            if topic not in known:
                raise ProducerError(f"tail: topic {topic} does not exist at {servers}")
            parts[topic] = known[topic]
        reader.assign(
            parts, args.since if args.since is not None else BEGINNING if args.from_beginning else END
        )
        signal.signal(signal.SIGTERM, _interrupt)
        _print_messages(reader, args, schemas, by_id)
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()
    return 0


def _print_messages(
    reader: TopicReader,
    args: argparse.Namespace,
    schemas: dict[bytes, codec.Schema],
    by_id: registry.ById | None,
) -> None:
    seen = 0
    last = time.monotonic()
    while args.max_messages is None or seen < args.max_messages:
        msg = reader.poll(0.5)
        if msg is None:
            if args.idle_timeout is not None and time.monotonic() - last > args.idle_timeout:
                break
            continue
        if msg.error is not None:
            print(json.dumps({"error": msg.error, "topic": msg.topic}), file=sys.stderr)
            continue
        last = time.monotonic()
        seen += 1
        out = message_json(msg, schemas, by_id)
        line = brief(out) if args.format == "brief" else json.dumps(out, default=codec.json_default)
        print(line, flush=True)


def _interrupt(_sig: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def message_json(
    msg: Message, schemas: dict[bytes, codec.Schema], by_id: registry.ById | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset}
    try:
        schema, record = codec.decode(msg.value, schemas, by_id)
        out["schema"] = schema.name
        out["value"] = record
    except ValueError as e:
        out["error"] = str(e)
    return out


def brief(out: dict[str, Any]) -> str:
    v = out.get("value")
    if v is None:
        return f"{out['topic']}@{out['offset']}: {out.get('error')}"
    schema = out.get("schema")
    line = catalog.BRIEF.get(str(schema))
    if line is not None:
        ts = v["timestamp"].strftime("%H:%M:%S.%f")[:-3]
        head = f"{ts} {schema} cpu={v['cpu']} seq={v['seq']} pid={v['pid']} comm={v['comm']}"
        return f"{head} {line(v)}{' [strings_escaped]' if v['strings_escaped'] else ''}"
    if schema == "drop_report":
        return _brief_report(v)
    return json.dumps(out, default=codec.json_default)


def _brief_report(v: dict[str, Any]) -> str:
    bal = ", ".join(
        f"{b['event_type']}: seen={b['seen']} delivered={b['delivered']} dropped={b['dropped']} "
        f"in_flight={b['in_flight']}"
        for b in v["balance"]
    )
    drops = ", ".join(
        f"{c['reason']}{'/' + c['error_code'] if c['error_code'] else ''}@cpu{c['cpu']}={c['count']}"
        for c in v["counters"]
        if c["reason"] not in ("seen", "delivered", "filtered")
    )
    final = " (final)" if v["final"] else ""
    return f"drop report #{v['report_seq']}{final}: {bal}; drops: {drops or 'none'}"
