"""Decoded events as the receiver wants them: JSON lines, Elastic _bulk NDJSON, or Splunk HEC events.

Every event carries `event_id`, its identity across retries and restarts, so a receiver can drop
the duplicates that at-least-once delivery allows:

    <host>/<boot_id>/<event_type>/<cpu>/<seq>           events of the perf streams
    <host>/<boot_id>/syscall_counts/<cgroup_id>/<interval_start µs>
    <topic>/<partition>/<offset>                        anything else (the Kafka coordinates)

The kernel numbers events per CPU and per event type, so (host, boot_id, cpu, seq) names an
event within its type. Elastic is told `create` with `_id = event_id`: a duplicate is refused
with 409, which counts as delivered. A body is a concatenation of per-event lines, so a batch is
split or retried without rendering its events again.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any, NamedTuple

from ..config.forward import ForwardConfig
from ..records import codec

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, default=codec.json_default, separators=(",", ":"), ensure_ascii=False).encode()


def _micros(t: Any) -> Any:
    return (t - _EPOCH) // dt.timedelta(microseconds=1) if isinstance(t, dt.datetime) else t


def event_id(event_type: str, value: dict[str, Any], coordinates: tuple[str, int, int]) -> str:
    if "cpu" in value and "seq" in value:
        return f"{value['host']}/{value['boot_id']}/{event_type}/{value['cpu']}/{value['seq']}"
    if "cgroup_id" in value and "interval_start" in value:
        start = _micros(value["interval_start"])
        return f"{value['host']}/{value['boot_id']}/{event_type}/{value['cgroup_id']}/{start}"
    topic, partition, offset = coordinates
    return f"{topic}/{partition}/{offset}"


# What a format says about each event of an accepted (2xx) request: ACCEPTED, RETRY or Rejected.
ACCEPTED, RETRY = "accepted", "retry"


class Rejected(NamedTuple):
    kind: str  # a short class for metrics, e.g. item_400
    reason: str  # the receiver's words, for the dead letter


Outcome = str | Rejected


class Format:
    """jsonl: one JSON object per line, {"event_id", "event_type", **fields}."""

    content_type = "application/x-ndjson"

    def __init__(self, fcfg: ForwardConfig) -> None:
        self.fcfg = fcfg

    def doc(self, event_type: str, eid: str, value: dict[str, Any]) -> dict[str, Any]:
        return {"event_id": eid, "event_type": event_type, **value}

    def render(self, event_type: str, eid: str, value: dict[str, Any]) -> bytes:
        """One event's part of a body, newline included."""
        return _dumps(self.doc(event_type, eid, value)) + b"\n"

    def outcomes(self, body: bytes, count: int) -> Sequence[Outcome] | None:
        """Per event of an accepted request: ACCEPTED, RETRY or Rejected.

        None: all accepted (a plain 2xx says no more).
        """
        return None


class ElasticBulk(Format):
    """_bulk NDJSON: {"create": {"_index", "_id": event_id}} then the document with @timestamp."""

    def render(self, event_type: str, eid: str, value: dict[str, Any]) -> bytes:
        index = self.fcfg.elastic.index.replace("{event_type}", event_type)
        action = _dumps({"create": {"_index": index, "_id": eid}})
        doc = self.doc(event_type, eid, value)
        if "timestamp" in value:  # what Kibana and data streams sort by
            doc = {"@timestamp": value["timestamp"], **doc}
        return action + b"\n" + _dumps(doc) + b"\n"

    def outcomes(self, body: bytes, count: int) -> Sequence[Outcome] | None:
        """_bulk answers 200 even when items failed: {"errors": true, "items": [{"create": {"status"}}]}."""
        try:
            answer = json.loads(body)
        except ValueError:
            return None
        if not isinstance(answer, dict) or not answer.get("errors"):
            return None
        items = answer.get("items")
        if not isinstance(items, list) or len(items) != count:
            return [RETRY] * count  # an answer that cannot be matched to the events: send them again
        return [_item_outcome(item) for item in items]


def _item_outcome(item: Any) -> Outcome:
    result: Any = next(iter(item.values()), {}) if isinstance(item, dict) and item else {}
    status = result.get("status", 0) if isinstance(result, dict) else 0
    if 200 <= status < 300 or status == 409:  # 409: that _id is there already, a duplicate
        return ACCEPTED
    if status == 429 or status >= 500 or not status:
        return RETRY
    err = result.get("error") or {}
    if isinstance(err, dict):
        err = f"{err.get('type', '')}: {err.get('reason', '')}"
    return Rejected(f"item_{status}", f"elastic item {status}: {err}"[:300])


class SplunkHec(Format):
    """HEC events, one JSON object per line: {"time", "host", "source", "sourcetype", ["index"], "event"}."""

    content_type = "application/json"

    def render(self, event_type: str, eid: str, value: dict[str, Any]) -> bytes:
        s = self.fcfg.splunk
        ts = value.get("timestamp")
        out: dict[str, Any] = {
            "time": round(ts.timestamp(), 6) if isinstance(ts, dt.datetime) else None,
            "host": value.get("host"),
            "source": s.source,
            "sourcetype": s.sourcetype.replace("{event_type}", event_type),
        }
        if out["time"] is None:
            del out["time"]  # HEC then stamps the time of arrival
        if s.index:
            out["index"] = s.index
        out["event"] = self.doc(event_type, eid, value)
        return _dumps(out) + b"\n"


def make(fcfg: ForwardConfig) -> Format:
    return {"jsonl": Format, "elastic_bulk": ElasticBulk, "splunk_hec": SplunkHec}[fcfg.format](fcfg)
