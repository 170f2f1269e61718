"""The forwarder's Kafka side: a consumer-group member that commits by hand, and the producer of its
dead letters and reports. Every confluent-kafka call of `ebpf-producer forward` is in this module.

Messages leave as our own Record and offsets as plain (topic, partition) -> next offset, so the
forwarder never handles a librdkafka object. Errors leave as ours (errors.py) or as a return value.
"""

from __future__ import annotations

import collections
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import structlog
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka import KafkaError as _KErr

from .. import sink
from ..config import KafkaConfig
from ..errors import KafkaConfigError

log = structlog.get_logger("forward.kafka")

TP = tuple[str, int]
Headers = list[tuple[str, str | bytes | None]]
PartitionsCallback = Callable[[list[TP]], None]

# What librdkafka may prefetch for this consumer: the bound on its memory while the forwarder
# has paused every partition (a receiver outage), whatever the topics' backlog.
PREFETCH_KBYTES = 16384


class Record(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers


class OutMessage(NamedTuple):
    topic: str
    value: bytes
    key: bytes | None
    headers: Headers


def subscription_pattern(topics: Iterable[str]) -> str:
    """A librdkafka regex subscription for exactly these topics.

    A pattern, not a list: a topic that does not exist yet is no error, and is picked up once the
    collector creates it (within topic.metadata.refresh.interval.ms).
    """
    return "^(" + "|".join(re.sub(r"([.\-])", r"\\\1", t) for t in sorted(set(topics))) + ")$"


class GroupConsumer:
    """One member of a consumer group: no auto-commit, offsets committed only when told.

    on_assign / on_revoke / on_lost run inside poll() (librdkafka serves rebalances there), with
    the (topic, partition) pairs that changed: the cooperative-sticky protocol moves only those.
    on_revoke may commit (its partitions are still ours then); on_lost may not (they are not).
    """

    def __init__(
        self,
        kcfg: KafkaConfig,
        *,
        group_id: str,
        start: str,
        client_id: str,
        on_assign: PartitionsCallback,
        on_revoke: PartitionsCallback,
        on_lost: PartitionsCallback,
    ) -> None:
        self.errors: collections.deque[str] = collections.deque(maxlen=32)
        self._callbacks = (on_assign, on_revoke, on_lost)
        conf = {
            **sink.connection_config(kcfg),
            "group.id": group_id,
            "client.id": client_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": start,
            "partition.assignment.strategy": "cooperative-sticky",
            "queued.max.messages.kbytes": PREFETCH_KBYTES,
            "topic.metadata.refresh.interval.ms": 10_000,
            "error_cb": self._on_error,
        }
        try:
            self._c = Consumer(conf, logger=sink.LibrdkafkaLog(client_id))
        except (KafkaException, ValueError, TypeError) as e:
            raise KafkaConfigError(f"kafka: librdkafka rejected the consumer configuration: {e}") from None
        self._paused = False

    def _on_error(self, err: Any) -> None:
        self.errors.append(f"{err.name()}: {err.str()}")

    def subscribe(self, topics: Sequence[str]) -> None:
        on_assign, on_revoke, on_lost = self._callbacks
        self._c.subscribe(
            [subscription_pattern(topics)],
            on_assign=lambda _c, parts: on_assign(_pairs(parts)),
            on_revoke=lambda _c, parts: on_revoke(_pairs(parts)),
            on_lost=lambda _c, parts: on_lost(_pairs(parts)),
        )

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        """Up to max_records messages; serves rebalance callbacks. Consumer errors are kept in .errors."""
        out = []
        for m in self._c.consume(max_records, timeout_s):
            err = m.error()
            if err is not None:
                self.errors.append(f"{err.name()}: {err.str()}")
                continue
            topic, partition, offset, headers = m.topic(), m.partition(), m.offset(), m.headers()
            assert topic is not None and partition is not None and offset is not None  # a message
            hdrs = list(headers.items()) if isinstance(headers, dict) else headers or []
            out.append(Record(topic, partition, offset, m.key(), m.value() or b"", hdrs))
        return out

    def pause(self) -> None:
        """Stop fetching every assigned partition (a receiver that refuses: memory must stay flat)."""
        if not self._paused:
            self._c.pause(self._c.assignment())
            self._paused = True

    def resume(self) -> None:
        if self._paused:
            self._c.resume(self._c.assignment())
            self._paused = False

    def pause_new(self, parts: list[TP]) -> None:
        """Partitions assigned while paused are paused too."""
        if self._paused and parts:
            self._c.pause([TopicPartition(t, p) for t, p in parts])

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Fetch this partition again from `offset` (a message handed out but not taken in)."""
        self._c.seek(TopicPartition(topic, partition, offset))

    def commit(self, offsets: Mapping[TP, int]) -> str | None:
        """Commit `offsets` (the next offset to read, per partition) and wait; None or why it failed.

        A failed commit is not fatal: the messages behind it were forwarded, and a later reader of
        the partition forwards them again (at least once: duplicates, never a loss).
        """
        if not offsets:
            return None
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            done = self._c.commit(offsets=tps, asynchronous=False)
        except KafkaException as e:
            return sink._reason(e)
        failed = [f"{tp.topic}[{tp.partition}]: {tp.error.str()}" for tp in done or [] if tp.error]
        return "; ".join(failed) or None

    def close(self) -> None:
        """Leave the group (rebalance callbacks run once more); commits nothing by itself."""
        try:
            self._c.close()
        except (KafkaException, RuntimeError) as e:
            log.warning("consumer_close_failed", error=str(e))


def _pairs(parts: list[Any]) -> list[TP]:
    return [(tp.topic, tp.partition) for tp in parts]


class Outbox:
    """Our own messages to Kafka (dead letters, reports) through an idempotent acks=all producer."""

    def __init__(self, kcfg: KafkaConfig, client_id: str) -> None:
        self._p = sink.new_producer(kcfg, client_id, quiet=True, **{"linger.ms": 5})

    def send(self, messages: Sequence[OutMessage], timeout_s: float) -> str | None:
        """Produce and wait for the broker's acknowledgement of every one; None, or why not.

        On a failure, those still queued are purged, so a second send cannot duplicate them;
        some of the failed batch may have landed (a dead letter is then written twice).
        """
        failures: list[str] = []

        def done(err: Any, _msg: Any) -> None:
            if err is not None:
                failures.append(f"{err.name()}: {err.str()}")

        try:
            for m in messages:
                self._produce(m, done)
        except KafkaException as e:
            failures.append(sink._reason(e))
        left = self._p.flush(max(0.0, timeout_s))
        if left:
            self._p.purge(in_queue=True, in_flight=False)
            self._p.flush(1.0)
            failures.append(f"{left} not acknowledged within {timeout_s:g} s")
        return "; ".join(failures[:3]) or None

    def _produce(self, m: OutMessage, on_delivery: Callable[[Any, Any], None] | None = None) -> None:
        deadline = time.monotonic() + 5.0
        while True:
            try:
                self._p.produce(m.topic, m.value, m.key, headers=m.headers, on_delivery=on_delivery)
                return
            except BufferError:
                if time.monotonic() >= deadline:
                    raise KafkaException(_KErr(_KErr._QUEUE_FULL)) from None
                self._p.poll(0.05)

    def post(self, message: OutMessage) -> bool:
        """Fire and forget (a periodic report: the next one carries the same cumulative books)."""
        try:
            self._produce(message)
        except KafkaException as e:
            log.warning("report_not_sent", topic=message.topic, error=sink._reason(e))
            return False
        self._p.poll(0)
        return True

    def close(self, timeout_s: float) -> int:
        """Flush within timeout_s; returns how many messages were left unsent."""
        return int(self._p.flush(max(0.0, timeout_s)))
