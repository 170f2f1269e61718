"""The supervisor's producer (Publisher: drop reports and syscall_counts records) and the
forwarder's (Outbox: dead letters and its reports).

Unlike a reader's Sink, the Publisher never waits for room: what a full queue refuses is the
caller's to retry at its next interval (the totals are cumulative). The Outbox waits for the
broker's acknowledgement of a dead letter before the forwarder commits past it. Outcomes and
delivery reports reach the caller as error names or reasons (strings), never as librdkafka objects.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import structlog
from confluent_kafka import KafkaError, KafkaException

from ..config import KafkaConfig
from .client import error_name, new_producer, reason
from .sink import Headers, purge

log = structlog.get_logger("kafka.publisher")

QUEUE_FULL = "queue_full"  # send()'s answer when the queue has no room now
# Delivery result: None when the broker acknowledged, else the error name (a purge's name, see
# client.PURGE_ERRORS, for what was dropped at shutdown).
OnResult = Callable[[str | None], None]


class Publisher:
    def __init__(self, kcfg: KafkaConfig, client_id: str) -> None:
        """Raises KafkaConfigError when librdkafka rejects a setting."""
        self._p: Any = new_producer(kcfg, client_id)

    def send(self, topic: str, value: bytes, key: bytes, headers: Headers, on_result: OnResult) -> str | None:
        """Queue one message: None when queued, else why not (QUEUE_FULL, or librdkafka's error name)."""

        def on_delivery(err: Any, _msg: Any) -> None:
            on_result(None if err is None else str(err.name()))

        try:
            self._p.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
            return None
        except BufferError:
            return QUEUE_FULL
        except KafkaException as e:
            return error_name(e)
        finally:
            self._p.poll(0)

    def poll(self) -> None:
        """Serve delivery reports."""
        self._p.poll(0)

    def flush(self, timeout_s: float) -> int:
        """Returns the messages still undelivered after timeout_s."""
        return int(self._p.flush(max(0.0, timeout_s)))

    def purge(self) -> None:
        """Drop what is still queued and serve its callbacks (they report a purge's error name)."""
        purge(self._p)

    def close(self) -> None:
        """Let librdkafka go now (its threads end): call after flush/purge, e.g. before a fork.

        The producer is destroyed when its last reference goes; with nothing queued that is quick.
        """
        self._p = None

    def reachable(self, timeout_s: float = 2.0) -> bool:
        """Does a broker answer a metadata request now? (Safe from another thread.)"""
        try:
            self._p.list_topics(timeout=timeout_s)
            return True
        except Exception:
            return False


class OutMessage(NamedTuple):
    topic: str
    value: bytes
    key: bytes | None
    headers: Headers


class Outbox:
    """The forwarder's own messages to Kafka (dead letters, reports), idempotent and acks=all."""

    def __init__(self, kcfg: KafkaConfig, client_id: str) -> None:
        """Raises KafkaConfigError when librdkafka rejects a setting."""
        self._p = new_producer(kcfg, client_id, quiet=True, **{"linger.ms": 5})

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
            failures.append(reason(e))
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
                    raise KafkaException(KafkaError(KafkaError._QUEUE_FULL)) from None
                self._p.poll(0.05)

    def post(self, message: OutMessage) -> bool:
        """Fire and forget (a periodic report: the next one carries the same cumulative books)."""
        try:
            self._produce(message)
        except KafkaException as e:
            log.warning("report_not_sent", topic=message.topic, error=reason(e))
            return False
        self._p.poll(0)
        return True

    def close(self, timeout_s: float) -> int:
        """Flush within timeout_s; returns how many messages were left unsent."""
        return int(self._p.flush(max(0.0, timeout_s)))
