"""Prometheus /metrics (through prometheus-client), /healthz and /readyz, served from the supervisor.

The supervisor's loop stores the latest ledger snapshot about once a second (Page.store) beside
its Health, which it keeps current; the HTTP thread exports the two through a prometheus_client
collector and never touches BPF maps or the arena itself.

Exported: ebpf_producer_events_total{event_type, cpu, reason[, error_code]} (error_code only on
delivery_failed rows), ebpf_producer_in_flight and ebpf_producer_dropped_total per event_type, and
the collector's health (the gauges and counters of `_health`). The chart's PrometheusRule alerts
on dropped_total and kafka_reachable (tests/helm/test_monitoring.py holds them to this list).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..endpoints import Endpoints
from ..ledger.book import Snapshot


@dataclass
class Health:
    bpf_attached: bool = False
    kafka_reachable: bool = False
    schemas_registered: bool = True  # False only while waiting for the schema registry
    readers_alive: int = 0
    readers_total: int = 0
    reader_restarts: int = 0
    reports_published: int = 0
    reports_failed: int = 0
    cpu_seconds: float = 0.0
    data_plane: str = "python"  # the readers' (producer/native: select)
    spool_enabled: bool = False
    spool_refusing: bool = False  # a reader's spool is refusing writes (disk full or failing)
    spool_bytes: int = 0
    spool_records: int = 0
    spool_oldest_age_s: float = 0.0
    readers_spooling: int = 0

    @property
    def ready(self) -> bool:
        # While the spool takes what Kafka cannot, the collector loses nothing: still ready.
        sending = self.kafka_reachable or (self.spool_enabled and not self.spool_refusing)
        return self.bpf_attached and sending and self.schemas_registered


Latest = Callable[[], tuple[Snapshot, Health]]


class Page:
    """The latest snapshot the supervisor stored, and its live Health: all the HTTP thread ever reads."""

    def __init__(self, health: Health) -> None:
        self.health = health  # readiness answers at once, not a second late
        self._snap = Snapshot()  # before the BPF is loaded (waiting for the registry): an empty ledger

    def store(self, snap: Snapshot) -> None:
        self._snap = snap  # one reference swap: atomic for the HTTP thread

    def latest(self) -> tuple[Snapshot, Health]:
        return self._snap, self.health


class LedgerCollector:
    """A prometheus_client collector over the latest stored snapshot and health."""

    def __init__(self, latest: Latest) -> None:
        self._latest = latest

    def collect(self) -> Iterator[Metric]:
        snap, health = self._latest()
        # Samples of one family with different label sets: error_code exists on delivery_failed rows only.
        events = Metric(
            "ebpf_producer_events", "Events per event type, CPU and ledger reason (cumulative).", "counter"
        )
        for (event_type, cpu, reason, code), v in sorted(snap.counts.items(), key=lambda kv: str(kv[0])):
            labels = {"event_type": event_type, "cpu": str(cpu), "reason": reason}
            if code is not None:
                labels["error_code"] = code
            events.add_sample("ebpf_producer_events_total", labels, v)
        yield events
        in_flight = GaugeMetricFamily(
            "ebpf_producer_in_flight",
            "Events seen by the kernel and not yet delivered or dropped.",
            labels=["event_type"],
        )
        dropped = CounterMetricFamily(
            "ebpf_producer_dropped",
            "Events dropped, all reasons (see ebpf_producer_events_total).",
            labels=["event_type"],
        )
        for b in snap.balances.values():
            in_flight.add_metric([b.event_type], b.in_flight)
            dropped.add_metric([b.event_type], b.dropped)
        yield in_flight
        yield dropped
        yield from _health(health)


def _health(h: Health) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "ebpf_producer_bpf_attached", "The programs are attached.", value=int(h.bpf_attached)
    )
    yield GaugeMetricFamily(
        "ebpf_producer_kafka_reachable", "A broker answered the last probe.", value=int(h.kafka_reachable)
    )
    yield GaugeMetricFamily(
        "ebpf_producer_schemas_registered",
        "0 only while the schema registry is awaited.",
        value=int(h.schemas_registered),
    )
    yield GaugeMetricFamily("ebpf_producer_readers_alive", "Reader processes running.", value=h.readers_alive)
    yield GaugeMetricFamily("ebpf_producer_readers", "Reader processes configured.", value=h.readers_total)
    yield CounterMetricFamily("ebpf_producer_reader_restarts", "Readers restarted.", value=h.reader_restarts)
    yield CounterMetricFamily(
        "ebpf_producer_drop_reports_published", "Drop reports queued.", value=h.reports_published
    )
    yield CounterMetricFamily(
        "ebpf_producer_drop_reports_failed", "Drop reports not delivered.", value=h.reports_failed
    )
    yield CounterMetricFamily(
        "ebpf_producer_cpu_seconds", "CPU time of the collector's processes.", value=h.cpu_seconds
    )
    plane = GaugeMetricFamily(
        "ebpf_producer_data_plane", "The readers' data plane: native (C) or python.", labels=["plane"]
    )
    plane.add_metric([h.data_plane], 1)
    yield plane
    yield GaugeMetricFamily("ebpf_producer_spool_bytes", "Bytes in the spool.", value=h.spool_bytes)
    yield GaugeMetricFamily(
        "ebpf_producer_spool_records",
        "Records in the spool (this run's and earlier runs').",
        value=h.spool_records,
    )
    yield GaugeMetricFamily(
        "ebpf_producer_spool_oldest_age_seconds",
        "Age of the oldest segment in the spool (0: empty).",
        value=h.spool_oldest_age_s,
    )
    yield GaugeMetricFamily(
        "ebpf_producer_readers_spooling",
        "Readers writing to their spool instead of Kafka.",
        value=h.readers_spooling,
    )


# prometheus_client writes every value as a float ("5.0", "1.2345678e+07"). The counts are exact
# integers and have always been exposed as such (consumers parse them as integers), so integral
# values are written back as integers; anything else is left as the library wrote it.
_SAMPLE = re.compile(rb"^([^#\n][^\n]*) (\S+)$", re.M)


def _integral(m: re.Match[bytes]) -> bytes:
    try:
        v = float(m[2])
    except ValueError:
        return m[0]
    return m[1] + b" " + str(int(v)).encode() if v.is_integer() and abs(v) < 2**63 else m[0]


def exposition(registry: CollectorRegistry) -> bytes:
    return _SAMPLE.sub(_integral, generate_latest(registry))


def registry_of(latest: Latest) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(latest))
    return registry


def render(snap: Snapshot, health: Health) -> str:
    """The /metrics page of one snapshot."""
    return exposition(registry_of(lambda: (snap, health))).decode()


class MetricsServer(Endpoints):
    def __init__(self, host: str, port: int, page: Page) -> None:
        registry = registry_of(page.latest)

        def ready() -> tuple[bool, str]:
            h = page.latest()[1]
            body = (
                f"bpf_attached={h.bpf_attached} kafka_reachable={h.kafka_reachable} "
                f"schemas_registered={h.schemas_registered} spooling={h.readers_spooling}\n"
            )
            return h.ready, body

        super().__init__(host, port, metrics=lambda: exposition(registry), ready=ready, name="metrics")
