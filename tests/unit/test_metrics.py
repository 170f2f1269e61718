"""/metrics through prometheus-client: the names, labels and integer values the chart and dashboards
rely on, and the endpoints, from a stored snapshot (no BPF, no arena)."""

from __future__ import annotations

import re

from producer.ledger.book import Balance, Snapshot
from producer.ops import metrics
from producer.ops.metrics import Health, MetricsServer, Page
from tests.support.collector import http_get


def snapshot() -> Snapshot:
    snap = Snapshot(
        counts={
            ("process_exec", 0, "seen", None): 12_345_678,
            ("process_exec", 0, "delivered", None): 12_345_600,
            ("process_exec", 0, "delivery_failed", "_MSG_TIMED_OUT"): 3,
            ("file_open", 1, "submit_failed", None): 7,
        }
    )
    snap.balances["process_exec"] = Balance("process_exec", seen=12_345_678, delivered=12_345_600, dropped=3)
    return snap


def test_names_labels_and_integer_values() -> None:
    text = metrics.render(snapshot(), Health(bpf_attached=True, readers_alive=2, readers_total=2))
    samples = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert {re.match(r"\w+", ln)[0] for ln in samples} == {  # type: ignore[index]
        "ebpf_producer_events_total",
        "ebpf_producer_in_flight",
        "ebpf_producer_dropped_total",
        "ebpf_producer_bpf_attached",
        "ebpf_producer_kafka_reachable",
        "ebpf_producer_schemas_registered",
        "ebpf_producer_readers_alive",
        "ebpf_producer_readers",
        "ebpf_producer_reader_restarts_total",
        "ebpf_producer_drop_reports_published_total",
        "ebpf_producer_drop_reports_failed_total",
        "ebpf_producer_cpu_seconds_total",
        "ebpf_producer_data_plane",
        "ebpf_producer_spool_bytes",
        "ebpf_producer_spool_records",
        "ebpf_producer_spool_oldest_age_seconds",
        "ebpf_producer_readers_spooling",
    }
    assert "# TYPE ebpf_producer_events_total counter" in text
    assert "# TYPE ebpf_producer_in_flight gauge" in text
    # counts are written as the integers they are, large ones too (not 1.2345678e+07)
    assert 'reason="seen"} 12345678\n' in text
    assert re.search(r'^ebpf_producer_in_flight\{event_type="process_exec"\} 75$', text, re.M)
    assert re.search(r"^ebpf_producer_readers_alive 2$", text, re.M)
    # error_code is a label of the delivery_failed rows alone
    events = [ln for ln in samples if ln.startswith("ebpf_producer_events_total")]
    with_code = [ln for ln in events if "error_code=" in ln]
    assert with_code == [
        'ebpf_producer_events_total{cpu="0",error_code="_MSG_TIMED_OUT",event_type="process_exec",'
        'reason="delivery_failed"} 3'
    ]
    assert len(events) == 4


def test_endpoints_serve_what_the_supervisor_stored() -> None:
    health = Health()
    page = Page(health)
    server = MetricsServer("127.0.0.1", 0, page)
    server.start()
    try:
        assert http_get(server.port, "/healthz") == (200, "ok\n")
        assert http_get(server.port, "/readyz") == (
            503,
            "bpf_attached=False kafka_reachable=False schemas_registered=True spooling=0\n",
        )
        assert "ebpf_producer_events_total{" not in http_get(server.port, "/metrics")[1]
        page.store(snapshot())
        health.bpf_attached = health.kafka_reachable = True
        assert http_get(server.port, "/readyz")[0] == 200
        status, text = http_get(server.port, "/metrics")
        assert status == 200 and 'reason="delivered"} 12345600' in text
        assert http_get(server.port, "/nope")[0] == 404
        # Kafka away but a spool taking everything: nothing is lost, so still ready
        health.kafka_reachable, health.spool_enabled, health.readers_spooling = False, True, 2
        assert http_get(server.port, "/readyz") == (
            200,
            "bpf_attached=True kafka_reachable=False schemas_registered=True spooling=2\n",
        )
        health.spool_refusing = True  # ...until the spool refuses too
        assert http_get(server.port, "/readyz")[0] == 503
    finally:
        server.stop()
