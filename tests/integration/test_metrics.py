"""/metrics, /healthz and /readyz of a running collector."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from tests.support.collector import CollectorRunner, http_get

pytestmark = [pytest.mark.kernel, pytest.mark.broker]


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        named = line.startswith((name + "{", name + " "))
        if named and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_endpoints_serve_the_ledger(collector: CollectorRunner) -> None:
    collector.start()
    port = collector.metrics_port()
    for _ in range(20):
        subprocess.run(["/bin/true"], check=True)
    deadline = time.monotonic() + 15
    while True:
        status, text = http_get(port, "/metrics")
        assert status == 200
        delivered = metric(text, "ebpf_producer_events_total", reason="delivered")
        if delivered >= 20 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert metric(text, "ebpf_producer_events_total", event_type="process_exec", reason="seen") >= 20
    assert metric(text, "ebpf_producer_events_total", reason="delivered") >= 20
    assert metric(text, "ebpf_producer_bpf_attached") == 1
    assert metric(text, "ebpf_producer_readers_alive") == metric(text, "ebpf_producer_readers") >= 1
    assert re.search(r'^ebpf_producer_in_flight\{event_type="process_exec"\} \d+$', text, re.M)
    assert "# TYPE ebpf_producer_events_total counter" in text
    assert http_get(port, "/healthz") == (200, "ok\n")
    status, body = http_get(port, "/readyz")
    assert status == 200, body
    assert http_get(port, "/nope")[0] == 404
    assert collector.stop() == 0
