"""The forwarder's pure logic: event ids and formats, Retry-After and backoff, commit positions, books."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import re
from typing import Any

import pytest
from prometheus_client import generate_latest

from producer import config
from producer.errors import ConfigError
from producer.forward import formats
from producer.forward.batch import ACCEPTED, DEAD, PENDING, RELEASED, Batch, Event, Positions
from producer.forward.books import Books
from producer.forward.receiver import Backoff, Reply, parse_retry_after
from producer.kafka.consumer import Message, subscription_pattern
from producer.records import codec


def fwd(**over: Any) -> config.ForwardConfig:
    return config.validate({"forward": {"url": "https://siem.example:8088/in", **over}}).forward


@pytest.fixture
def decoded(exec_dict: dict[str, Any]) -> dict[str, Any]:
    """A process_exec as the forwarder sees it: framed, then decoded (timestamps are datetimes)."""
    frame = codec.Encoder(codec.load_schema("process_exec")).encode(exec_dict)
    return codec.decode(frame, codec.load_all())[1]


def test_event_id_is_the_kernel_key_within_the_event_type(exec_dict: dict[str, Any]) -> None:
    eid = formats.event_id("process_exec", exec_dict, ("t.process_exec", 3, 99))
    assert eid == f"node-1/b00t/process_exec/{exec_dict['cpu']}/{exec_dict['seq']}"
    # The same event read again (another offset, after a crash) has the same id.
    assert formats.event_id("process_exec", exec_dict, ("t.process_exec", 0, 5)) == eid


def test_event_id_of_an_aggregate_and_of_anything_else() -> None:
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    agg = {"host": "h", "boot_id": "b", "cgroup_id": 7, "interval_start": start}
    assert (
        formats.event_id("syscall_counts", agg, ("t", 0, 1))
        == f"h/b/syscall_counts/7/{int(start.timestamp() * 1e6)}"
    )
    assert formats.event_id("drop_report", {"x": 1}, ("t.drops", 2, 41)) == "t.drops/2/41"


def test_jsonl_is_one_flat_object_per_line(decoded: dict[str, Any]) -> None:
    line = formats.make(fwd()).render("process_exec", "id-1", decoded)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    doc = json.loads(line)
    assert doc["event_id"] == "id-1" and doc["event_type"] == "process_exec"
    assert doc["argv"] == decoded["argv"] and doc["seq"] == decoded["seq"]
    assert dt.datetime.fromisoformat(doc["timestamp"]) == decoded["timestamp"]


def test_elastic_bulk_creates_by_event_id(decoded: dict[str, Any]) -> None:
    f = formats.make(fwd(format="elastic_bulk", elastic={"index": "siem-{event_type}"}))
    action, doc, end = f.render("process_exec", "id-1", decoded).split(b"\n")
    assert json.loads(action) == {"create": {"_index": "siem-process_exec", "_id": "id-1"}}
    assert json.loads(doc)["@timestamp"] == json.loads(doc)["timestamp"]
    assert end == b""


def test_elastic_item_answers() -> None:
    f = formats.make(fwd(format="elastic_bulk"))
    assert f.outcomes(b'{"errors": false, "items": []}', 3) is None
    items = [{"create": {"status": s}} for s in (201, 409, 429, 503)]
    items.append({"create": {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "bad"}}})
    out = f.outcomes(json.dumps({"errors": True, "items": items}).encode(), 5)
    assert out is not None
    assert list(out[:4]) == [formats.ACCEPTED, formats.ACCEPTED, formats.RETRY, formats.RETRY]
    assert out[4] == formats.Rejected("item_400", "elastic item 400: mapper_parsing_exception: bad")
    # items that cannot be matched to the events: all of them again
    assert f.outcomes(json.dumps({"errors": True, "items": items}).encode(), 6) == [formats.RETRY] * 6


def test_splunk_hec_event(decoded: dict[str, Any]) -> None:
    f = formats.make(fwd(format="splunk_hec", splunk={"index": "os"}))
    doc = json.loads(f.render("process_exec", "id-1", decoded))
    assert doc["time"] == pytest.approx(decoded["timestamp"].timestamp())
    assert doc["host"] == "node-1" and doc["sourcetype"] == "ebpf:process_exec" and doc["index"] == "os"
    assert doc["source"] == "ebpf-kafka-producer" and doc["event"]["event_id"] == "id-1"


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("999999") == 3600.0
    when = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(when, now=1_000_000) == pytest.approx(30)
    assert parse_retry_after(email.utils.formatdate(10, usegmt=True), now=1_000_000) == 0.0
    assert (
        parse_retry_after("soon") is None
        and parse_retry_after(None) is None
        and parse_retry_after("-1") is None
    )


def test_backoff_doubles_with_jitter_up_to_the_bound_and_honours_retry_after() -> None:
    b = Backoff(0.5, 4.0)
    waits = [b.next() for _ in range(8)]
    for n, w in enumerate(waits):
        d = min(4.0, 0.5 * 2**n)
        assert d / 2 <= w <= d
    assert b.next(retry_after_s=12.0) == 12.0
    b.reset()
    assert b.next() <= 0.5


@pytest.mark.parametrize(
    ("reply", "retryable"),
    [
        (Reply(500), True),
        (Reply(503), True),
        (Reply(429), True),
        (Reply(408), True),
        (Reply(401), True),  # at runtime: a credential being rotated, never a dead letter
        (Reply(None, error="reset"), True),
        (Reply(400), False),
        (Reply(413), False),
        (Reply(422), False),
        (Reply(200), False),
    ],
)
def test_which_answers_are_retried(reply: Reply, retryable: bool) -> None:
    assert reply.retryable is retryable


def ev(topic: str, partition: int, offset: int, state: int = PENDING) -> Event:
    return Event(Message(topic, partition, offset, None, {}, b"", 0), b"x\n", state)


def test_a_partition_is_committed_up_to_its_first_unresolved_event() -> None:
    events = [
        ev("a", 0, 10, ACCEPTED),
        ev("a", 1, 5, ACCEPTED),
        ev("a", 0, 11, DEAD),
        ev("a", 1, 6, PENDING),
        ev("a", 0, 12, ACCEPTED),
        ev("a", 1, 7, ACCEPTED),  # after an unresolved one: not yet
    ]
    pos = Positions()
    pos.advance(events, {("a", 0), ("a", 1)})
    assert pos.due() == {("a", 0): 13, ("a", 1): 6}
    pos.acknowledged(pos.due())
    assert pos.due() == {}
    events[3].state = ACCEPTED
    pos.advance(events, {("a", 0), ("a", 1)})
    assert pos.due() == {("a", 1): 8}


def test_partitions_not_owned_are_never_committed() -> None:
    pos = Positions()
    pos.advance([ev("a", 0, 1, ACCEPTED), ev("a", 1, 1, ACCEPTED)], {("a", 1)})
    assert pos.due() == {("a", 1): 2}


def test_release_gives_back_only_unresolved_events_of_the_partitions() -> None:
    b = Batch()
    for e in (ev("a", 0, 1, ACCEPTED), ev("a", 0, 2), ev("a", 1, 1), ev("a", 0, 3)):
        b.add(e)
    b.events[3].reject("http_400", "no")
    released = b.release({("a", 0)})
    assert [e.rec.offset for e in released] == [2, 3]
    assert [e.state for e in b.events] == [ACCEPTED, RELEASED, PENDING, RELEASED]
    assert b.unresolved()


def test_books_add_up_on_metrics_and_in_the_report() -> None:
    books = Books(group_id="g")
    books.count("t.x", "consumed", 10)
    books.count("t.x", "forwarded", 6)
    books.dead("t.x", "undecodable", 1)
    books.count("t.x", "released", 2)
    books.request("200", 0.01)
    text = generate_latest(books.registry).decode()
    value = {
        m.group(1): float(m.group(2))
        for m in re.finditer(r'^ebpf_forward_events_total\{outcome="(\w+)",topic="t.x"\} (\S+)$', text, re.M)
    }
    assert value == {"consumed": 10, "forwarded": 6, "dead_lettered": 1, "released": 2}
    assert 'ebpf_forward_in_flight{topic="t.x"} 1.0' in text
    assert 'ebpf_forward_dead_lettered_total{reason="undecodable",topic="t.x"} 1.0' in text
    assert 'ebpf_forward_requests_total{status="200"} 1.0' in text
    assert "process_cpu_seconds_total" in text
    (row,) = books.report()["topics"]
    assert row == {
        "topic": "t.x",
        "consumed": 10,
        "forwarded": 6,
        "dead_lettered": 1,
        "released": 2,
        "in_flight": 1,
    }


def test_subscription_pattern_matches_exactly_the_topics() -> None:
    pattern = subscription_pattern(["ebpf.process_exec", "my-ebpf.tcp_close"])
    assert pattern == r"^(ebpf\.process_exec|my\-ebpf\.tcp_close)$"
    assert re.match(pattern, "ebpf.process_exec") and not re.match(pattern, "ebpfXprocess_exec")


BAD = [
    ({"url": "ftp://siem"}, "forward.url: must be an http:// or https:// URL, got 'ftp://siem'"),
    ({"url": "https://u:pw@siem"}, "forward.url: must not carry credentials; use forward.auth"),
    ({"url": "https://siem/?token=abc"}, "forward.url: must not carry a credential in its query"),
    ({"url": "https://siem:99999/"}, "forward.url: has an invalid port"),
    ({"url": "http://siem", "auth": {"token_file": "/t"}}, "forward.auth.token_file: would send the secret"),
    (
        {"url": "http://siem", "tls": {"ca_file": "/ca"}},
        "forward.tls.ca_file: only used with an https:// url",
    ),
    ({"auth": {"token": "abc"}}, "forward.auth.token: secrets are never written into the config"),
    ({"auth": {"username": "u"}}, "forward.auth.password_file: username and password_file go together"),
    (
        {"auth": {"token_file": "/t", "username": "u", "password_file": "/p"}},
        "forward.auth.token_file: a token",
    ),
    ({"tls": {"cert_file": "/c"}}, "forward.tls.key_file: cert_file and key_file go together"),
    ({"format": "syslog"}, "forward.format: must be jsonl, elastic_bulk or splunk_hec, got 'syslog'"),
    ({"batch": {"max_events": 0}}, "forward.batch.max_events: must be between 1 and 100000, got 0"),
    ({"elastic": {"index": "Upper"}}, "forward.elastic.index: must be a lowercase index name"),
    ({"splunk": {"sourcetype": "x:{host}"}}, "forward.splunk.sourcetype: may hold {event_type} and no other"),
    (
        {"retry": {"backoff_initial_s": 60, "backoff_max_s": 30}},
        "forward.retry.backoff_initial_s: must be <=",
    ),
    ({"listen": "nope"}, "forward.listen: must be HOST:PORT"),
    ({"topics": ["a b"]}, "forward.topics[0]: must be a topic name"),
]


@pytest.mark.parametrize(("section", "message"), BAD)
def test_bad_forward_config_is_one_line_naming_the_key(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        config.validate({"forward": section})
    assert message in str(e.value)
    assert "abc" not in str(e.value) or "token=abc" not in str(e.value)  # a credential is never echoed
