"""A test's broker, and the messages of a topic read back from the beginning (raw, or decoded with
schemas/ or a registry). Every consumer of the tests is producer.kafka.consumer's."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from producer.kafka.consumer import BEGINNING, TopicReader
from producer.kafka.consumer import Message as RawMessage
from producer.records import codec

ById = Callable[[int], codec.Schema | None]


@dataclass
class Broker:
    bootstrap: str
    controllable: bool
    script: Path | None = None

    def stop(self) -> None:
        assert self.script is not None
        subprocess.run(["bash", str(self.script), "down"], check=True)

    def start(self) -> None:
        assert self.script is not None
        subprocess.run(["bash", str(self.script), "up"], check=True)

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """The broker is down inside the block, and up again after it, whatever happens."""
        self.stop()
        try:
            yield
        finally:
            self.start()


@dataclass
class Message:
    """One of our messages, decoded: `value` is the record; the rest is the message as read."""

    schema: str
    value: dict[str, Any]
    read: RawMessage

    @property
    def key(self) -> bytes | None:
        return self.read.key

    @property
    def headers(self) -> dict[str, bytes]:
        return self.read.headers

    @property
    def raw(self) -> bytes:
        return self.read.value


def raw_messages(
    bootstrap: str,
    topic: str,
    *,
    idle_s: float = 5.0,
    max_wait_s: float = 120.0,
    expect: int | None = None,
    conf: dict[str, Any] | None = None,
    poll_s: float = 0.5,
) -> Generator[RawMessage]:
    """Every message of `topic` from the beginning; stops after idle_s of silence (once `expect`
    messages arrived, if given; at once when idle_s is 0), or after max_wait_s.

    `conf`: more librdkafka settings (a secured broker's). Partitions are assigned directly, not
    through a consumer group: a group's first join on a fresh broker can take longer than idle_s,
    and would end the read early.
    """
    reader = TopicReader({**(conf or {}), "bootstrap.servers": bootstrap})
    try:
        reader.assign(reader.partitions(topic, timeout_s=30), BEGINNING)
        n = 0
        last = time.monotonic()
        end = last + max_wait_s
        while time.monotonic() < end:
            m = reader.poll(poll_s)
            if m is None:
                if time.monotonic() - last > idle_s and (expect is None or n >= expect):
                    break
                continue
            if m.error is not None:
                continue
            last = time.monotonic()
            n += 1
            yield m
            if expect is not None and n >= expect and idle_s == 0:
                break
    finally:
        reader.close()


def wait_for_topic(bootstrap: str, topic: str, timeout_s: float = 30.0) -> bool:
    """Does `topic` exist (in the metadata, without an error) within timeout_s? One the process under
    test creates at its start may not be there yet when the test first looks."""
    reader = TopicReader({"bootstrap.servers": bootstrap})
    try:
        end = time.monotonic() + timeout_s
        while not reader.partitions(topic):
            if time.monotonic() >= end:
                return False
            time.sleep(0.1)
        return True
    finally:
        reader.close()


def decoded(m: RawMessage, schemas: dict[bytes, codec.Schema], by_id: ById | None = None) -> Message:
    schema, value = codec.decode(m.value, schemas, by_id)
    return Message(schema.name, value, m)


def consume(bootstrap: str, topic: str, *, by_id: ById | None = None, **read: Any) -> list[Message]:
    """Every message of `topic` from the beginning, decoded; `read`: raw_messages' idle_s, max_wait_s,
    expect, conf (when to stop, how to connect); `by_id`: schema ids of Confluent-framed messages."""
    schemas = codec.load_all()
    return [decoded(m, schemas, by_id) for m in raw_messages(bootstrap, topic, **read)]


def consume_until(
    bootstrap: str, topic: str, match: Callable[[Message], bool], max_wait_s: float = 30.0
) -> Message | None:
    """The first message of `topic` (from the beginning) that `match`es, or None after max_wait_s."""
    schemas = codec.load_all()
    found = raw_messages(bootstrap, topic, idle_s=max_wait_s, max_wait_s=max_wait_s, poll_s=0.1)
    with contextlib.closing(found):
        return next((msg for msg in (decoded(m, schemas) for m in found) if match(msg)), None)
