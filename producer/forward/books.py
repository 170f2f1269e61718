"""The forwarder's own books, per topic, and their three views: /metrics, log lines, <prefix>.forward.

    consumed == forwarded + dead_lettered + released + in_flight

consumed: taken from Kafka into a batch. forwarded: accepted by the receiver (2xx; for Elastic,
per item, a 409 duplicate included). dead_lettered: acknowledged by Kafka in <prefix>.dlq.
released: given back unforwarded, at a rebalance or at the shutdown deadline; their offsets were
not committed, so the partition's next reader forwards them. in_flight: in the batch being
delivered. After a clean stop in_flight is 0. Counts are cumulative for the process (run_id).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = structlog.get_logger("forward")

OUTCOMES = ("consumed", "forwarded", "dead_lettered", "released")


@dataclass
class TopicBooks:
    consumed: int = 0
    forwarded: int = 0
    dead_lettered: int = 0
    released: int = 0

    @property
    def in_flight(self) -> int:
        return self.consumed - self.forwarded - self.dead_lettered - self.released


@dataclass
class Snapshot:
    topics: dict[str, TopicBooks]
    dead_reasons: dict[tuple[str, str], int]
    requests: dict[str, int]
    counters: dict[str, int]
    ready: bool
    not_ready_reason: str


@dataclass
class Books:
    """Written by the forwarding loop, read by the HTTP thread and the reports: one lock, short holds."""

    group_id: str
    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    instance: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    ready: bool = False
    not_ready_reason: str = "probing the receiver"
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _topics: dict[str, TopicBooks] = field(default_factory=dict)
    _dead_reasons: Counter[tuple[str, str]] = field(default_factory=Counter)
    _requests: Counter[str] = field(default_factory=Counter)
    _counters: Counter[str] = field(default_factory=Counter)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    report_seq: int = 0

    def __post_init__(self) -> None:
        self.request_seconds = Histogram(
            "ebpf_forward_request_seconds",
            "Duration of each POST to the receiver, answered or not.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, RSS, open fds
        self.registry.register(_BooksCollector(self))

    def count(self, topic: str, outcome: str, n: int = 1) -> None:
        with self._lock:
            tb = self._topics.get(topic)
            if tb is None:
                tb = self._topics[topic] = TopicBooks()
            setattr(tb, outcome, getattr(tb, outcome) + n)

    def dead(self, topic: str, kind: str, n: int = 1) -> None:
        """dead_lettered, by kind of reason (undecodable, http_<status>, item_<status>): few values."""
        with self._lock:
            tb = self._topics.setdefault(topic, TopicBooks())
            tb.dead_lettered += n
            self._dead_reasons[(topic, kind)] += n

    def request(self, status: str, seconds: float) -> None:
        self.request_seconds.observe(seconds)
        with self._lock:
            self._requests[status] += 1

    def bump(self, name: str, n: int = 1) -> None:
        """retries, commit_failures, dead_letter_failures, bytes_sent, batches, reports..."""
        with self._lock:
            self._counters[name] += n

    def set_ready(self, ready: bool, reason: str = "") -> None:
        self.ready, self.not_ready_reason = ready, "" if ready else reason

    def readiness(self) -> tuple[bool, str]:
        """/readyz: 200 only while the receiver accepts (the first probe passed and the last attempt
        was not a failure being retried), else 503 with the reason."""
        ready, reason = self.ready, self.not_ready_reason
        return ready, "ready\n" if ready else f"not ready: {reason}\n"

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                topics={t: TopicBooks(**vars(b)) for t, b in self._topics.items()},
                dead_reasons=dict(self._dead_reasons),
                requests=dict(self._requests),
                counters=dict(self._counters),
                ready=self.ready,
                not_ready_reason=self.not_ready_reason,
            )

    def report(self, *, final: bool = False) -> dict[str, Any]:
        """The periodic report (JSON on <prefix>.forward), and one `forward_books` log line per topic."""
        snap = self.snapshot()
        self.report_seq += 1
        usage = resource.getrusage(resource.RUSAGE_SELF)
        rows = []
        for topic, b in sorted(snap.topics.items()):
            row = {"topic": topic, **vars(b), "in_flight": b.in_flight}
            rows.append(row)
            log.info("forward_books", report_seq=self.report_seq, final=final, **row)
        return {
            "group_id": self.group_id,
            "instance": self.instance,
            "run_id": self.run_id,
            "report_seq": self.report_seq,
            "final": final,
            "time": dt.datetime.now(dt.UTC).isoformat(),
            "ready": snap.ready,
            "topics": rows,
            "dead_lettered_by_reason": [
                {"topic": t, "reason": r, "count": n} for (t, r), n in sorted(snap.dead_reasons.items())
            ],
            "requests": dict(sorted(snap.requests.items())),
            **dict(sorted(snap.counters.items())),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        }

    @staticmethod
    def encode(report: dict[str, Any]) -> bytes:
        return json.dumps(report, separators=(",", ":")).encode()


class _BooksCollector(Collector):
    """The books as Prometheus families, read at scrape time from one snapshot (so they add up)."""

    def __init__(self, books: Books) -> None:
        self._books = books

    def collect(self) -> Iterator[Metric]:
        snap = self._books.snapshot()
        events = CounterMetricFamily(
            "ebpf_forward_events",
            "Events per topic and outcome: consumed == forwarded + dead_lettered + released + in_flight.",
            labels=["topic", "outcome"],
        )
        in_flight = GaugeMetricFamily(
            "ebpf_forward_in_flight", "Events consumed and not yet resolved, per topic.", labels=["topic"]
        )
        for topic, b in sorted(snap.topics.items()):
            for outcome in OUTCOMES:
                events.add_metric([topic, outcome], getattr(b, outcome))
            in_flight.add_metric([topic], b.in_flight)
        dead = CounterMetricFamily(
            "ebpf_forward_dead_lettered",
            "Events written to <prefix>.dlq, by reason (undecodable, http_<status>, item_<status>).",
            labels=["topic", "reason"],
        )
        for (topic, reason), n in sorted(snap.dead_reasons.items()):
            dead.add_metric([topic, reason], n)
        requests = CounterMetricFamily(
            "ebpf_forward_requests",
            "POSTs to the receiver by answer: an HTTP status, or timeout, error, tls.",
            labels=["status"],
        )
        for status, n in sorted(snap.requests.items()):
            requests.add_metric([status], n)
        yield from (events, in_flight, dead, requests)
        for name in (
            "retries",
            "commit_failures",
            "dead_letter_failures",
            "bytes_sent",
            "batches",
            "reports",
        ):
            yield CounterMetricFamily(
                f"ebpf_forward_{name}", f"{name.replace('_', ' ')}.", snap.counters.get(name, 0)
            )
        yield GaugeMetricFamily(
            "ebpf_forward_receiver_ready",
            "1 while the receiver accepts (the /readyz answer).",
            int(snap.ready),
        )
