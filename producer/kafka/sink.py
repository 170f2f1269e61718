"""A reader's producer: produce() never raises, it answers with a ledger reason.

Bounded backpressure: a full queue gets poll() and retries for kafka.max_block_ms, then the record
is counted as queue_full; while the queue stays full later records are counted at once. Delivery
reports are classified into ledger reasons by `classify` (the reader counts them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException

from ..config import KafkaConfig
from ..ledger.arena import DELIVERED, QUEUE_FULL, SHUTDOWN, delivery_slot
from .client import PURGED, error_name, new_producer

DeliveryCallback = Callable[[Any, Any], None]
Headers = list[tuple[str, str | bytes | None]]


class Sink:
    """produce() answers None (accepted) or the ledger reason it was dropped for."""

    def __init__(self, kcfg: KafkaConfig, client_id: str, should_stop: Callable[[], bool]) -> None:
        self.fatal = ""  # set by librdkafka's error callback when the producer cannot go on
        self._p = new_producer(kcfg, client_id, error_cb=self._on_error)
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


def classify(err: Any) -> int:
    """A delivery report's error -> ledger reason index."""
    if err is None:
        return DELIVERED
    if err.code() in PURGED:
        return SHUTDOWN
    return delivery_slot(err.name())
