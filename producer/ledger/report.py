"""Drop reports: the ledger published to <prefix>.drops beside the events.

One DropReport (schemas/drop_report.avsc) every accounting.interval_s and a
final one at shutdown, keyed by host, cumulative since the run started.
Runs in the supervisor, through its Publisher; ledger/recovery.py uses it
for the final report of a dead run too (`recovered`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from ..config import Config
from ..kafka.framing import framing
from ..kafka.publisher import Publisher
from .book import Ledger, Snapshot

log = structlog.get_logger("report")


@dataclass
class ReportStats:
    published: int = 0
    delivered: int = 0
    failed: int = 0
    last_error: str = ""


class Reporter:
    def __init__(
        self,
        cfg: Config,
        ledger: Ledger,
        publisher: Publisher,
        host: str,
        boot_id: str,
        schema_ids: Mapping[str, int],
        *,
        run_id: str,
        started_us: int | None = None,
        report_seq: int = 0,
        recovered: bool = False,
    ) -> None:
        self.ledger = ledger
        self.publisher = publisher
        self.host = host
        self.boot_id = boot_id
        self.run_id = run_id
        self.started_us = _now_us() if started_us is None else started_us
        self._last_us = self.started_us
        self._seq = report_seq
        self.recovered = recovered
        self.framing = framing("drop_report", schema_ids)
        self.topic = cfg.kafka.drops_topic
        self.stats = ReportStats()

    def record(self, snap: Snapshot, *, final: bool, cpu_seconds: float, restarts: int) -> dict[str, Any]:
        now = _now_us()
        rec = {
            "host": self.host,
            "boot_id": self.boot_id,
            "run_id": self.run_id,
            "report_seq": self._seq,
            "final": final,
            "recovered": self.recovered,
            "run_started": self.started_us,
            "interval_start": self._last_us,
            "interval_end": now,
            "cpu_seconds": cpu_seconds,
            "reader_restarts": restarts,
            "counters": self.ledger.counter_records(snap),
            "balance": [b.as_record() for b in snap.balances.values()],
            "replayed": [r.as_record() for r in snap.replayed],
        }
        self._seq += 1
        self._last_us = now
        return rec

    @property
    def next_seq(self) -> int:
        return self._seq

    def publish(self, rec: dict[str, Any], on_delivered: Callable[[], None] | None = None) -> None:
        """Queue one report; failures are logged and counted here (a report is not an event).

        A report that is not sent costs nothing but its interval: the next one carries the same totals.
        `on_delivered`: called once the broker acknowledged it.
        """
        try:
            value = self.framing.encoder.encode(rec)
        except (ValueError, TypeError, OverflowError) as e:
            self._failed(repr(e))
            return

        def on_result(error: str | None) -> None:
            self._on_result(error)
            if error is None and on_delivered is not None:
                on_delivered()

        why = self.publisher.send(self.topic, value, self.host.encode(), self.framing.headers, on_result)
        if why is None:
            self.stats.published += 1
        else:
            self._failed(why)

    def _on_result(self, error: str | None) -> None:
        if error is None:
            self.stats.delivered += 1
        else:
            self._failed(error)

    def _failed(self, what: str) -> None:
        self.stats.failed += 1
        self.stats.last_error = what
        log.warning("drop_report_not_delivered", error=what, failed_total=self.stats.failed)


def _now_us() -> int:
    return time.time_ns() // 1000
