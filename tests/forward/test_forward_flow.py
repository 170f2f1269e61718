"""`ebpf-producer forward` against the real broker and a real HTTP receiver: formats, the books, the
dead-letter topic, retries, readiness, SIGTERM and rebalances. Events are real framed messages
written to the topic by the test (test_forward_e2e.py takes them from the collector)."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest

from tests.forward.httpsink import OK, RESET, HttpSink, slow, status
from tests.forward.support import (
    ForwarderRunner,
    create_topic,
    event_id,
    exec_event,
    produce,
)
from tests.support.collector import http_get, wait_ready
from tests.support.kafka import Broker, raw_messages, wait_for_topic

pytestmark = pytest.mark.broker


def feed(broker: Broker, prefix: str, n: int, partitions: int = 2, start: int = 0) -> list[str]:
    topic = f"{prefix}.process_exec"
    if start == 0:
        create_topic(broker.bootstrap, topic, partitions)
    produce(broker.bootstrap, topic, [exec_event(i) for i in range(start, start + n)], partitions)
    return [event_id(i) for i in range(start, start + n)]


def final_books(f: ForwarderRunner) -> dict[str, int]:
    rows = [r for r in f.books() if r["final"] == "True"]
    assert rows, f.log()
    return {k: int(v) for k, v in rows[-1].items() if v.isdigit()}


def assert_books_close(books: dict[str, int]) -> None:
    assert books["in_flight"] == 0, books
    assert books["consumed"] == books["forwarded"] + books["dead_lettered"] + books["released"], books


@pytest.mark.parametrize("fmt", ["jsonl", "elastic_bulk", "splunk_hec"])
def test_every_event_arrives_once_in_each_format(
    broker: Broker, prefix: str, make_forwarder: Any, fmt: str
) -> None:
    sink = HttpSink(elastic=fmt == "elastic_bulk")
    try:
        ids = feed(broker, prefix, 3000)
        f = make_forwarder(sink.url)
        f.start({"forward": {"format": fmt, "gzip": fmt != "jsonl", "batch": {"max_events": 400}}})
        docs = (lambda s: s.events()) if fmt != "splunk_hec" else (lambda s: [e["event"] for e in s.events()])
        sink.wait_for(lambda s: len(docs(s)) >= 3000, 60, "3000 events")
        time.sleep(1.5)  # nothing more comes
        got = [d["event_id"] for d in docs(sink)]
        assert sorted(got) == sorted(ids)  # each once: no crash, so no duplicate
        req = sink.requests[-1]
        assert req.headers["Content-Type"] == (
            "application/json" if fmt == "splunk_hec" else "application/x-ndjson"
        )
        if fmt != "jsonl":
            assert req.headers["Content-Encoding"] == "gzip" and req.raw_len < len(req.body)
        assert max(len([ln for ln in r.body.splitlines() if ln]) for r in sink.requests) <= 400 * (
            2 if fmt == "elastic_bulk" else 1
        )
        port = f.port()
        metrics = http_get(port, "/metrics")[1]
        assert (
            f'ebpf_forward_events_total{{outcome="forwarded",topic="{prefix}.process_exec"}} 3000.0'
            in metrics
        )
        assert f.stop() == 0
        assert_books_close(final_books(f))
    finally:
        sink.down()


def test_poison_records_go_to_the_dead_letter_topic_and_the_rest_flows(
    broker: Broker, prefix: str, make_forwarder: Any, sink: HttpSink
) -> None:
    topic = f"{prefix}.process_exec"
    create_topic(broker.bootstrap, topic, 1)
    refused = exec_event(500)
    values = [exec_event(i) for i in range(1000)]
    values[500] = refused
    values.insert(250, b"\xde\xad not an event")  # undecodable bytes among the events
    produce(broker.bootstrap, topic, values)
    # The receiver refuses one event (400): the batch is split until it stands alone.
    sink.reject = lambda d: d.get("seq") == 500
    f = make_forwarder(sink.url)
    f.start()
    sink.wait_for(lambda s: len(s.events()) >= 999, 60, "999 events")
    letters = read_topic(broker, f"{prefix}.dlq", expect=2)
    assert sorted(sink.ids()) == sorted(event_id(i) for i in range(1000) if i != 500)
    by_reason = {h["reason"].split(":")[0]: (h, v) for h, v in letters}
    h, v = by_reason["undecodable"]
    assert v == b"\xde\xad not an event"
    assert (h["source_topic"], h["source_partition"], h["source_offset"]) == (topic, "0", "250")
    h, v = by_reason["HTTP 400"]
    assert v == refused and h["source_offset"] == "501" and h["event_type"] == "process_exec"
    assert h["forward_group"] == f.group_id
    assert f.stop() == 0
    books = final_books(f)
    assert books["dead_lettered"] == 2 and books["forwarded"] == 999
    assert_books_close(books)


def read_topic(broker: Broker, topic: str, expect: int) -> list[tuple[dict[str, str], bytes]]:
    """(headers, value) of every message of `topic`: at least `expect`, then until 2 s of silence."""
    assert wait_for_topic(broker.bootstrap, topic), f"no topic {topic}"
    out = [
        ({k: v.decode() for k, v in m.headers.items()}, m.value)
        for m in raw_messages(broker.bootstrap, topic, idle_s=2, max_wait_s=30, expect=expect)
    ]
    assert len(out) >= expect, out
    return out


def test_retries_5xx_429_resets_and_timeouts_then_delivers(
    broker: Broker, prefix: str, make_forwarder: Any, sink: HttpSink
) -> None:
    ids = feed(broker, prefix, 200, partitions=1)
    sink.script.extend(
        [
            OK,  # the probe at start
            status(500),
            status(503),
            status(429, Retry_After="2"),
            RESET,
            slow(3.0),  # longer than forward.timeout_s: the receiver keeps them, the forwarder retries
            status(429, Retry_After=lambda: _http_date(2)),
        ]
    )
    f = make_forwarder(sink.url)
    f.start({"forward": {"timeout_s": 1.5, "batch": {"max_events": 1000}}})
    port = f.port()
    saw_503 = False
    end = time.monotonic() + 60
    while len(sink.ids()) < 400 and time.monotonic() < end:  # each twice: see the slow answer below
        saw_503 |= http_get(port, "/readyz")[0] == 503
        time.sleep(0.1)
    assert set(sink.ids()) == set(ids)
    assert saw_503  # not ready while it retries
    arrived = sorted(sink.requests, key=lambda r: r.at)  # recorded when answered: the slow one late
    codes = [r.status for r in arrived]
    assert codes[:8] == [200, 500, 503, 429, None, 200, 429, 200], codes
    at = [r.at for r in arrived]
    assert at[4] - at[3] >= 1.9  # Retry-After: 2 (seconds)
    assert at[7] - at[6] >= 0.9  # Retry-After as an HTTP date, 2 s ahead (1 s resolution)
    # The slow answer came after the forwarder gave up: those events were sent twice, with one id each.
    dup = Counter(sink.ids())
    assert set(dup.values()) == {2} and len(dup) == 200
    assert wait_ready(port, 10)[0] == 200  # the answer to the last request may still be on its way
    assert f.stop() == 0
    assert_books_close(final_books(f))


def _http_date(ahead_s: float) -> str:
    import email.utils

    return email.utils.formatdate(time.time() + ahead_s, usegmt=True)


def test_sigterm_while_the_receiver_refuses_exits_in_time_and_a_restart_forwards_the_rest(
    broker: Broker, prefix: str, make_forwarder: Any, sink: HttpSink
) -> None:
    ids = feed(broker, prefix, 2000)
    sink.script.extend([slow(0.3)] * 3)  # a few batches get through slowly...
    f = make_forwarder(sink.url)
    f.start({"forward": {"batch": {"max_events": 100}}})
    sink.wait_for(lambda s: len(s.events()) >= 100, 30, "the first batch")
    sink.default = status(503)  # ...then the receiver fails
    time.sleep(2)
    t0 = time.monotonic()
    assert f.stop() == 0
    assert time.monotonic() - t0 < 5 + 3  # drain_timeout_s (5) and the final report
    books = final_books(f)
    assert books["released"] > 0 and books["forwarded"] < 2000
    assert_books_close(books)
    forwarded = len(sink.events())
    sink.default = OK
    f.start()  # the same group: it starts at the committed offsets
    sink.wait_for(lambda s: set(s.ids()) == set(ids), 60, "every event")
    time.sleep(1)
    assert len(sink.events()) == 2000  # nothing accepted before was committed twice over, nothing lost
    assert forwarded == books["forwarded"]


def test_two_forwarders_share_the_partitions_and_a_rebalance_loses_nothing(
    broker: Broker, prefix: str, make_forwarder: Any, sink: HttpSink
) -> None:
    ids = feed(broker, prefix, 6000, partitions=4)
    sink.default = slow(0.15)  # slow enough that the rebalances happen mid-stream
    a, b = make_forwarder(sink.url, "a"), make_forwarder(sink.url, "b")
    a.start({"forward": {"batch": {"max_events": 100}}})
    sink.wait_for(lambda s: len(s.events()) >= 500, 60, "a's first events")
    b.start({"forward": {"batch": {"max_events": 100}}})
    b.wait_for_log("partitions_assigned", timeout=60)
    sink.wait_for(lambda s: len(s.events()) >= 2500, 60, "both at work")
    assert a.stop() == 0  # its partitions move to b
    sink.wait_for(lambda s: set(s.ids()) >= set(ids), 120, "every event")
    assert b.stop() == 0
    got = Counter(sink.ids())
    assert set(got) == set(ids)
    for books in (final_books(a), final_books(b)):
        assert_books_close(books)
    # at least once: a duplicate is an event sent again after a rebalance, and it is the same event
    docs: dict[str, str] = {}
    for e in sink.events():
        text = json.dumps(e, sort_keys=True)
        assert docs.setdefault(e["event_id"], text) == text
    assert "partitions_revoked" in a.log() and "partitions_assigned" in b.log()


def test_metrics_readiness_and_reports_on_the_forward_topic(
    broker: Broker, prefix: str, make_forwarder: Any, sink: HttpSink
) -> None:
    feed(broker, prefix, 100, partitions=1)
    f = make_forwarder(sink.url)
    f.start()
    sink.wait_for(lambda s: len(s.events()) == 100, 30, "100 events")
    port = f.port()
    assert http_get(port, "/healthz") == (200, "ok\n")
    assert http_get(port, "/readyz") == (200, "ready\n")
    assert f.stop() == 0
    messages = read_topic(broker, f"{prefix}.forward", expect=1)
    assert all(h["content-type"] == "application/json" for h, _ in messages)
    reports = [json.loads(v) for _, v in messages]
    final = [r for r in reports if r["final"]]
    assert final and final[-1]["group_id"] == f.group_id
    (row,) = final[-1]["topics"]
    assert row == {
        "topic": f"{prefix}.process_exec",
        "consumed": 100,
        "forwarded": 100,
        "dead_lettered": 0,
        "released": 0,
        "in_flight": 0,
    }


def test_elastic_item_errors_are_retried_dead_lettered_or_taken_as_duplicates(
    broker: Broker, prefix: str, make_forwarder: Any
) -> None:
    sink = HttpSink(elastic=True)
    tries: Counter[int] = Counter()

    def item_status(doc: dict[str, Any]) -> int:
        tries[doc["seq"]] += 1
        if doc["seq"] == 7:
            return 400  # a mapping error: for good
        if doc["seq"] == 9 and tries[9] == 1:
            return 429  # the cluster is busy: once
        return 201

    sink.item_status = item_status
    try:
        topic = f"{prefix}.process_exec"
        create_topic(broker.bootstrap, topic, 1)
        produce(broker.bootstrap, topic, [exec_event(i) for i in range(100)] + [exec_event(3)])  # 3 twice
        f = make_forwarder(sink.url)
        f.start({"forward": {"format": "elastic_bulk"}})
        (h, v), *_ = read_topic(broker, f"{prefix}.dlq", expect=1)
        assert v == exec_event(7) and h["reason"].startswith("elastic item 400: status_400")
        sink.wait_for(lambda s: len(s.events()) == 99, 30, "99 documents")
        assert sorted(sink.ids()) == sorted(event_id(i) for i in range(100) if i != 7)
        assert tries[9] == 2  # retried once, alone
        assert f.stop() == 0
        books = final_books(f)
        # the second copy of seq 3 was refused as a duplicate (409): delivered all the same
        assert (books["consumed"], books["forwarded"], books["dead_lettered"]) == (101, 100, 1)
        assert_books_close(books)
    finally:
        sink.down()


def test_confluent_framed_messages_are_decoded_through_the_schema_registry(
    broker: Broker, prefix: str, make_forwarder: Any, sink: HttpSink, schema_registry: Any
) -> None:
    from producer import config
    from producer.kafka import registry
    from producer.records import codec

    topic = f"{prefix}.process_exec"
    rcfg = config.validate({"schema_registry": {"url": schema_registry.url}}).schema_registry
    schema_id = registry.Registry(rcfg).register(registry.subject(topic), codec.load_schema("process_exec"))
    header = codec.confluent_header(schema_id)
    framed = [header + exec_event(i)[codec.HEADER_LEN :] for i in range(20)]
    unknown = codec.confluent_header(schema_id + 100_000) + exec_event(99)[codec.HEADER_LEN :]
    create_topic(broker.bootstrap, topic, 1)
    produce(broker.bootstrap, topic, [*framed, unknown])
    f = make_forwarder(sink.url)
    f.start({"schema_registry": {"url": schema_registry.url}})
    sink.wait_for(lambda s: len(s.events()) == 20, 30, "20 events")
    assert sorted(sink.ids()) == sorted(event_id(i) for i in range(20))
    ((h, v),) = read_topic(broker, f"{prefix}.dlq", expect=1)
    assert (
        v == unknown and h["reason"].startswith("undecodable: ") and str(schema_id + 100_000) in h["reason"]
    )
    assert f.stop() == 0
