"""Reading topics back: `ebpf-producer tail`, and the tests' and benchmark's consumers.

Partitions are assigned directly rather than through a consumer group: no rebalance wait, so an
idle timeout measures silence, not a group join on a fresh broker. Messages leave as our own
Message, so no caller handles librdkafka objects.
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, TopicPartition

from ..config import KafkaConfig
from ..errors import BrokerUnreachableError
from .admin import refused_connection
from .client import LibrdkafkaLog, reason
from .security import connection_config

BEGINNING, END = "beginning", "end"


def new_consumer(
    connection: Mapping[str, Any], *, name: str = "ebpf-producer-tail", **extra: Any
) -> Consumer:
    """A consumer that joins no group and commits nothing; librdkafka's own log lines stay quiet."""
    conf = {**connection, "group.id": f"{name}-{uuid.uuid4()}", "enable.auto.commit": False, **extra}
    return Consumer(conf, logger=LibrdkafkaLog(name, quiet=True))


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: dict[str, bytes]
    value: bytes
    timestamp_ms: int
    error: str | None = None  # a consumer-side error in place of a message


class TopicReader:
    """Whole topics, from the beginning, the end, or a point in time."""

    def __init__(self, connection: Mapping[str, Any], *, kcfg: KafkaConfig | None = None) -> None:
        """`kcfg`: translate refused credentials and certificates into its errors (tail does)."""
        self._servers = str(connection.get("bootstrap.servers", ""))
        self._kcfg = kcfg
        self._errors: collections.deque[Any] = collections.deque(maxlen=16)  # tail may run for days
        self._c = new_consumer(connection, error_cb=self._errors.append)

    @classmethod
    def of(cls, kcfg: KafkaConfig, bootstrap_servers: str | None = None) -> TopicReader:
        return cls(connection_config(kcfg, bootstrap_servers), kcfg=kcfg)

    def partitions(self, topic: str | None = None, timeout_s: float = 10.0) -> dict[str, list[int]]:
        """Topic -> partitions, of the topics without an error (of `topic` alone when named).

        Raises BrokerUnreachableError (KafkaAuthError, KafkaTlsError when the broker refused us).
        """
        try:
            md = self._c.list_topics(topic, timeout=timeout_s)
        except KafkaException as e:
            self._c.poll(0)  # serves error_cb: refused credentials or certificates say so
            if self._kcfg is not None:
                refused_connection(self._kcfg, self._errors)
            raise BrokerUnreachableError(
                f"kafka: no broker answered at {self._servers} ({reason(e)}); start one (make kafka-up)"
            ) from None
        return {name: list(t.partitions) for name, t in md.topics.items() if t.error is None}

    def assign(self, parts: Mapping[str, Sequence[int]], start: str | float = BEGINNING) -> None:
        """Read these partitions from BEGINNING, END, or the first message at or after `start` (epoch s)."""
        if isinstance(start, str):
            offset = OFFSET_BEGINNING if start == BEGINNING else OFFSET_END
            tps = [TopicPartition(t, p, offset) for t, ps in parts.items() for p in ps]
        else:
            ms = int(start * 1000)
            tps = self._c.offsets_for_times(
                [TopicPartition(t, p, ms) for t, ps in parts.items() for p in ps], 10
            )
        self._c.assign(tps)

    def poll(self, timeout_s: float) -> Message | None:
        m = self._c.poll(timeout_s)
        if m is None:
            return None
        err = m.error()
        return Message(
            topic=str(m.topic()),
            partition=int(m.partition() or 0),
            offset=int(m.offset() or 0),
            key=m.key(),
            headers=_headers(m.headers()),
            value=m.value() or b"",
            timestamp_ms=int(m.timestamp()[1]),
            error=None if err is None else str(err.str()),
        )

    def close(self) -> None:
        self._c.close()


def _headers(raw: Any) -> dict[str, bytes]:
    """A message's headers (a list of pairs; librdkafka gives a dict when asked with one)."""
    items = raw.items() if isinstance(raw, dict) else (raw or [])
    return {str(k): v if isinstance(v, bytes) else str(v or "").encode() for k, v in items}
