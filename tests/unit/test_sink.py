"""Sink.produce on a full queue: poll and retry within max_block_ms, then a counted drop, never a raise."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from producer import config
from producer.errors import KafkaConfigError
from producer.kafka import client, sink
from producer.ledger import arena as ledger


@dataclass
class FullQueue:
    """A librdkafka producer whose queue has room only after `room_after` polls (or never)."""

    room_after: int | None = None
    polls: int = 0
    produced: int = 0
    raise_error: KafkaError | None = None

    def produce(self, *args: Any, **kwargs: Any) -> None:
        if self.raise_error is not None:
            raise KafkaException(self.raise_error)
        if self.room_after is None or self.polls < self.room_after:
            raise BufferError("Local: Queue full")
        self.produced += 1

    def poll(self, timeout: float = 0) -> int:
        self.polls += 1
        time.sleep(timeout)  # like librdkafka with nothing to serve: the whole timeout
        return 0


def make_sink(fake: FullQueue, max_block_ms: int = 100, stop: bool = False) -> sink.Sink:
    s = sink.Sink(config.validate({"kafka": {"max_block_ms": max_block_ms}}).kafka, "test", lambda: stop)
    s._p = fake  # type: ignore[assignment]
    return s


def produce(s: sink.Sink) -> int | None:
    return s.produce("t", b"v", b"k", [], lambda err, msg: None)


def test_room_appears_within_the_budget() -> None:
    fake = FullQueue(room_after=3)
    assert produce(make_sink(fake)) is None
    assert fake.produced == 1 and fake.polls >= 3


def test_a_queue_that_stays_full_is_a_counted_drop_then_fast() -> None:
    s = make_sink(FullQueue(), max_block_ms=100)
    t0 = time.monotonic()
    assert produce(s) == ledger.QUEUE_FULL
    first = time.monotonic() - t0
    assert 0.1 <= first < 1.0
    # still full: the next records are counted at once, without any wait (a reader that slept even
    # 5 ms per record would let its perf rings overflow during an outage)
    t0 = time.monotonic()
    for _ in range(500):
        assert produce(s) == ledger.QUEUE_FULL
    assert time.monotonic() - t0 < 0.25


def test_stopping_gives_up_at_once() -> None:
    t0 = time.monotonic()
    assert produce(make_sink(FullQueue(), max_block_ms=5000, stop=True)) == ledger.QUEUE_FULL
    assert time.monotonic() - t0 < 0.5


def test_an_immediate_kafka_error_is_counted_by_code() -> None:
    fake = FullQueue(raise_error=KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    assert produce(make_sink(fake)) == ledger.delivery_slot("MSG_SIZE_TOO_LARGE")


def test_classify_delivery_reports() -> None:
    assert sink.classify(None) == ledger.DELIVERED
    assert sink.classify(KafkaError(KafkaError._PURGE_QUEUE)) == ledger.SHUTDOWN
    assert sink.classify(KafkaError(KafkaError._PURGE_INFLIGHT)) == ledger.SHUTDOWN
    assert sink.classify(KafkaError(KafkaError._MSG_TIMED_OUT)) == ledger.delivery_slot("_MSG_TIMED_OUT")
    assert sink.classify(KafkaError(KafkaError.INVALID_CONFIG)) == ledger.delivery_slot("other")


def test_enforced_settings_win_over_overrides() -> None:
    kcfg = config.validate({"kafka": {"client": {"linger.ms": 5, "compression.type": "zstd"}}}).kafka
    conf = client.client_config(kcfg, "x")
    assert conf["enable.idempotence"] is True and conf["acks"] == "all"
    assert conf["linger.ms"] == 5 and conf["compression.type"] == "zstd"
    assert conf["queue.buffering.max.kbytes"] == 65_536


def test_librdkafka_rejection_is_translated() -> None:
    kcfg = config.validate({"kafka": {"client": {"linger.ms": "soon"}}}).kafka
    expected = (
        r"^kafka\.client: librdkafka rejected the configuration: Invalid value for configuration property"
    )
    with pytest.raises(KafkaConfigError, match=expected):
        client.new_producer(kcfg, "x")
