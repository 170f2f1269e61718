"""The supervisor's producer: drop reports and syscall_counts records.

Unlike a reader's Sink it never waits for room: what a full queue refuses is the caller's to retry
at its next interval (the totals are cumulative). Outcomes and delivery reports reach the caller
as error names (strings), never as librdkafka objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException

from ..config import KafkaConfig
from .client import error_name, new_producer
from .sink import Headers, purge

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
