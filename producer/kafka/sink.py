"""A reader's producer: produce() never raises, it answers with a ledger reason.

Bounded backpressure: a full queue gets poll() and retries for kafka.max_block_ms, then the record
is counted as queue_full; while the queue stays full later records are counted at once. Delivery
reports are classified into ledger reasons by `classify` (the reader counts them).

With a spool (reader/spooling.py) a full queue costs no wait at all: `ring(..., spill=...)` hands
the record to the spool instead, and from then on every record, until the spool has been replayed
(`offer`, one frame at a time, never waiting) and what was produced before has its answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException

from ..config import KafkaConfig
from ..ledger.arena import DELIVERED, PRODUCED, QUEUE_FULL, SHUTDOWN, delivery_slot
from .client import PURGED, SPOOLING, error_name, new_producer

DeliveryCallback = Callable[[Any, Any], None]
Headers = list[tuple[str, str | bytes | None]]
# One ring's produce: (Kafka message value, the record's seq) -> the ledger reason it ended in
# (PRODUCED when librdkafka took it).
RingProduce = Callable[[bytes, int], int]


class Gate:
    """Whether a reader produces directly (False) or appends to its spool (True)."""

    __slots__ = ("on_full", "spooling")

    def __init__(self, on_full: Callable[[], None]) -> None:
        self.spooling = False
        self.on_full = on_full  # called once when a full queue turns the reader to its spool


class Sink:
    """produce() answers None (accepted) or the ledger reason it was dropped for."""

    def __init__(
        self, kcfg: KafkaConfig, client_id: str, should_stop: Callable[[], bool], *, spool: bool = False
    ) -> None:
        self.fatal = ""  # set by librdkafka's error callback when the producer cannot go on
        extra = SPOOLING if spool else {}
        self._p = new_producer(kcfg, client_id, error_cb=self._on_error, **extra)
        self._max_block_s = kcfg.max_block_ms / 1000.0
        self._should_stop = should_stop
        # Set once the queue stayed full for max_block_ms: later records are
        # counted at once instead of each waiting the full budget again, so a
        # long outage cannot slow the reader to one record per max_block_ms.
        self._saturated = False

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes,
        headers: Headers,
        on_delivery: DeliveryCallback,
    ) -> int | None:
        p = self._p
        try:
            p.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
            self._saturated = False
            return None
        except BufferError:
            pass
        except KafkaException as e:
            return delivery_slot(error_name(e))
        # Waiting for room is worth it within the budget only. Once the queue stayed full that
        # long, a record must cost no wait at all, or the reader falls behind its perf rings and
        # the kernel starts dropping too.
        hurry = self._saturated or self._should_stop()
        deadline = time.monotonic() + (0.0 if hurry else self._max_block_s)
        while True:
            p.poll(0.0 if hurry else 0.005)
            try:
                p.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                self._saturated = False
                return None
            except BufferError:
                if time.monotonic() >= deadline or self._should_stop():
                    self._saturated = True
                    return QUEUE_FULL
            except KafkaException as e:
                return delivery_slot(error_name(e))

    def ring(
        self,
        topic: str,
        key: bytes,
        headers: Headers,
        on_delivery: DeliveryCallback,
        spill: RingProduce | None = None,
        gate: Gate | None = None,
    ) -> RingProduce:
        """The produce of one ring (topic, key and headers bound): PRODUCED or a drop reason.

        With `spill` and `gate`: while gate.spooling, or when the queue is full, the record goes to
        `spill` (the spool) and its answer is returned.
        """
        produce = self._p.produce
        slow = self.produce

        if spill is None or gate is None:

            def direct(value: bytes, _seq: int) -> int:
                try:
                    produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                    self._saturated = False
                    return PRODUCED
                except BufferError:
                    pass
                except KafkaException as e:
                    return delivery_slot(error_name(e))
                result = slow(topic, value, key, headers, on_delivery)
                return PRODUCED if result is None else result

            return direct

        def spilling(value: bytes, seq: int) -> int:
            if not gate.spooling:
                try:
                    produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                    return PRODUCED
                except BufferError:
                    gate.spooling = True
                    gate.on_full()
                except KafkaException as e:
                    return delivery_slot(error_name(e))
            return spill(value, seq)

        return spilling

    def offer(
        self, topic: str, value: bytes, key: bytes, headers: Headers, on_delivery: DeliveryCallback
    ) -> int | None:
        """Produce without waiting: None (taken), QUEUE_FULL (no room now), or the failure's reason."""
        try:
            self._p.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
            return None
        except BufferError:
            return QUEUE_FULL
        except KafkaException as e:
            return delivery_slot(error_name(e))

    def flush(self, timeout_s: float) -> int:
        return int(self._p.flush(max(0.0, timeout_s)))

    def purge(self) -> int:
        """Give back what librdkafka still holds (its delivery reports say so); returns what is left."""
        return purge(self._p)

    def _on_error(self, err: Any) -> None:
        if err.fatal():
            self.fatal = f"{err.name()}: {err.str()}"

    def poll(self, timeout: float = 0.0) -> int:
        return int(self._p.poll(timeout))

    def __len__(self) -> int:
        return len(self._p)

    def close(self, deadline: float) -> int:
        """Flush until `deadline` (monotonic), then purge the rest and serve its callbacks.

        Returns how many messages were still unresolved afterwards (their
        delivery callbacks never ran); the caller counts those as shutdown.
        Never calls Producer.close(): that flushes without a time limit.
        """
        p = self._p
        p.flush(max(0.0, deadline - time.monotonic()))
        return purge(p)


def purge(p: Any, wait_s: float = 1.0) -> int:
    """Drop what is still queued or in flight and serve the purge callbacks; returns what is left."""
    if len(p):
        p.purge(in_queue=True, in_flight=True, blocking=False)
        end = time.monotonic() + wait_s
        while len(p) and time.monotonic() < end:
            p.poll(0.05)
    return len(p)


def message_value(msg: Any) -> bytes:
    """The value of a message a delivery report is about."""
    return bytes(msg.value())


def message_key(msg: Any) -> bytes:
    """The key of a message a delivery report is about (b"" for none)."""
    return bytes(msg.key() or b"")


def classify(err: Any) -> int:
    """A delivery report's error -> ledger reason index."""
    if err is None:
        return DELIVERED
    if err.code() in PURGED:
        return SHUTDOWN
    return delivery_slot(err.name())
