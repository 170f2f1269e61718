"""Drop reports: the ledger published to <prefix>.drops beside the events.

One DropReport (schemas/drop_report.avsc) every accounting.interval_s and a
final one at shutdown, keyed by host, cumulative since the run started.
Runs in the supervisor with the supervisor's own producer.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import structlog

from . import codec, sink
from .config import Config
from .ledger import Ledger, Snapshot

log = structlog.get_logger("report")


@dataclass
class ReportStats:
    published: int = 0
    delivered: int = 0
    failed: int = 0
    last_error: str = ""


class Reporter:
    def __init__(
        self, cfg: Config, ledger: Ledger, host: str, boot_id: str, *, schema_id: int | None = None
    ) -> None:
        self.cfg = cfg
        self.ledger = ledger
        self.host = host
        self.boot_id = boot_id
        self.run_id = str(uuid.uuid4())
        self.started_us = _now_us()
        self._last_us = self.started_us
        self._seq = 0
        self.encoder = codec.Encoder(
            codec.load_schema("drop_report"),
            header=None if schema_id is None else codec.confluent_header(schema_id),
        )
        self.producer = sink.new_producer(cfg.kafka, f"ebpf-producer-{host}-supervisor")
        self.topic = cfg.kafka.drops_topic
        self.headers = sink.headers_for("drop_report", self.encoder.content_type)
        self.stats = ReportStats()

    def record(self, snap: Snapshot, *, final: bool, cpu_seconds: float, restarts: int) -> dict[str, Any]:
        now = _now_us()
        rec = {
            "host": self.host,
            "boot_id": self.boot_id,
            "run_id": self.run_id,
            "report_seq": self._seq,
            "final": final,
            "run_started": self.started_us,
            "interval_start": self._last_us,
            "interval_end": now,
            "cpu_seconds": cpu_seconds,
            "reader_restarts": restarts,
            "counters": self.ledger.counter_records(snap),
            "balance": [b.as_record() for b in snap.balances.values()],
        }
        self._seq += 1
        self._last_us = now
        return rec

    def publish(self, rec: dict[str, Any]) -> None:
        """Queue one report; failures are logged and counted here (a report is not an event)."""
        try:
            value = self.encoder.encode(rec)
            self.producer.produce(
                self.topic, value, self.host.encode(), headers=self.headers, on_delivery=self._on_delivery
            )
            self.stats.published += 1
        except Exception as e:  # BufferError, KafkaException: the next report carries the same totals
            self._failed(repr(e))
        self.producer.poll(0)

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is None:
            self.stats.delivered += 1
        else:
            self._failed(err.name())

    def _failed(self, what: str) -> None:
        self.stats.failed += 1
        self.stats.last_error = what
        log.warning("drop_report_not_delivered", error=what, failed_total=self.stats.failed)

    def poll(self) -> None:
        self.producer.poll(0)

    def flush(self, timeout_s: float) -> int:
        """Returns reports still undelivered after timeout_s."""
        return int(self.producer.flush(max(0.0, timeout_s)))

    def purge(self) -> None:
        """Drop what is still queued and serve its callbacks (they count it as shutdown)."""
        self.producer.purge(in_queue=True, in_flight=True, blocking=False)
        end = time.monotonic() + 1.0
        while len(self.producer) and time.monotonic() < end:
            self.producer.poll(0.05)

    def kafka_reachable(self, timeout_s: float = 2.0) -> bool:
        try:
            self.producer.list_topics(timeout=timeout_s)
            return True
        except Exception:
            return False


def _now_us() -> int:
    return time.time_ns() // 1000
