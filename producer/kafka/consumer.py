"""Reading topics: whole topics back (TopicReader: `ebpf-producer tail`, the tests, the benchmark), and
a member of a consumer group that commits by hand (GroupConsumer: `ebpf-producer forward`).

A TopicReader assigns partitions directly rather than through a consumer group: no rebalance wait,
so an idle timeout measures silence, not a group join on a fresh broker. Both hand out our own
Message, and the group member takes offsets as plain (topic, partition) -> next offset, so no
caller handles librdkafka objects. Errors leave as ours (errors.py) or as a return value.
"""

from __future__ import annotations

import collections
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, TopicPartition

from ..config import KafkaConfig
from ..errors import BrokerUnreachableError, KafkaConfigError
from .admin import refused_connection
from .client import LibrdkafkaLog, reason
from .security import connection_config

log = structlog.get_logger("kafka.consumer")

BEGINNING, END = "beginning", "end"
TP = tuple[str, int]
PartitionsCallback = Callable[[list[TP]], None]

# What librdkafka may prefetch for a group member: the bound on its memory while the forwarder
# has paused every partition (a receiver outage), whatever the topics' backlog.
PREFETCH_KBYTES = 16384


def new_consumer(
    connection: Mapping[str, Any],
    *,
    name: str = "ebpf-producer-tail",
    group_id: str | None = None,
    quiet: bool = True,
    **extra: Any,
) -> Consumer:
    """A consumer that commits nothing by itself; without `group_id`, a group of its own (it joins
    none unless it subscribes). `quiet`: librdkafka's own log lines are dropped.

    Raises KafkaConfigError with librdkafka's own words when it rejects a setting.
    """
    conf = {
        **connection,
        "group.id": group_id or f"{name}-{uuid.uuid4()}",
        "enable.auto.commit": False,
        **extra,
    }
    try:
        return Consumer(conf, logger=LibrdkafkaLog(name, quiet=quiet))
    except (KafkaException, ValueError, TypeError) as e:
        raise KafkaConfigError(
            f"kafka: librdkafka rejected the consumer configuration: {reason(e)}"
        ) from None


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


def _message(m: Any) -> Message:
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


def _headers(raw: Any) -> dict[str, bytes]:
    """A message's headers (a list of pairs; librdkafka gives a dict when asked with one)."""
    items = raw.items() if isinstance(raw, dict) else (raw or [])
    return {str(k): v if isinstance(v, bytes) else str(v or "").encode() for k, v in items}


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
        return None if m is None else _message(m)

    def close(self) -> None:
        self._c.close()


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
        self._c = new_consumer(
            connection_config(kcfg),
            name=client_id,
            group_id=group_id,
            quiet=False,
            **{
                "client.id": client_id,
                "enable.auto.offset.store": False,
                "auto.offset.reset": start,
                "partition.assignment.strategy": "cooperative-sticky",
                "queued.max.messages.kbytes": PREFETCH_KBYTES,
                "topic.metadata.refresh.interval.ms": 10_000,
                "error_cb": self._on_error,
            },
        )
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

    def poll(self, max_messages: int, timeout_s: float) -> list[Message]:
        """Up to max_messages messages; serves rebalance callbacks. Consumer errors are kept in .errors."""
        out = []
        for m in self._c.consume(max_messages, timeout_s):
            msg = _message(m)
            if msg.error is not None:
                self.errors.append(msg.error)
            else:
                out.append(msg)
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
            return reason(e)
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
