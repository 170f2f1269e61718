"""Prometheus /metrics, /healthz and /readyz, served from the supervisor.

The page is rendered by the supervisor's loop (about once a second) from the
same ledger snapshot the drop reports use, and the HTTP thread only serves
the last rendering: it never touches BPF maps or the arena itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .ledger import Snapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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

    @property
    def ready(self) -> bool:
        return self.bpf_attached and self.kafka_reachable and self.schemas_registered


def render(snap: Snapshot, health: Health) -> str:
    lines = [
        "# HELP ebpf_producer_events_total Events per event type, CPU and ledger reason (cumulative).",
        "# TYPE ebpf_producer_events_total counter",
    ]
    for (event_type, cpu, reason, code), v in sorted(snap.counts.items(), key=lambda kv: str(kv[0])):
        labels = f'event_type="{event_type}",cpu="{cpu}",reason="{reason}"'
        if code is not None:
            labels += f',error_code="{code}"'
        lines.append(f"ebpf_producer_events_total{{{labels}}} {v}")
    lines += [
        "# HELP ebpf_producer_in_flight Events seen by the kernel and not yet delivered or dropped.",
        "# TYPE ebpf_producer_in_flight gauge",
    ]
    lines += [
        f'ebpf_producer_in_flight{{event_type="{b.event_type}"}} {b.in_flight}'
        for b in snap.balances.values()
    ]
    lines += [
        "# HELP ebpf_producer_dropped_total Events dropped, all reasons (see ebpf_producer_events_total).",
        "# TYPE ebpf_producer_dropped_total counter",
    ]
    lines += [
        f'ebpf_producer_dropped_total{{event_type="{b.event_type}"}} {b.dropped}'
        for b in snap.balances.values()
    ]
    gauges = [
        ("bpf_attached", "gauge", int(health.bpf_attached)),
        ("kafka_reachable", "gauge", int(health.kafka_reachable)),
        ("schemas_registered", "gauge", int(health.schemas_registered)),
        ("readers_alive", "gauge", health.readers_alive),
        ("readers", "gauge", health.readers_total),
        ("reader_restarts_total", "counter", health.reader_restarts),
        ("drop_reports_published_total", "counter", health.reports_published),
        ("drop_reports_failed_total", "counter", health.reports_failed),
        ("cpu_seconds_total", "counter", health.cpu_seconds),
    ]
    for name, kind, value in gauges:
        lines += [f"# TYPE ebpf_producer_{name} {kind}", f"ebpf_producer_{name} {value}"]
    return "\n".join(lines) + "\n"


class MetricsServer:
    def __init__(self, host: str, port: int, page: Callable[[], tuple[str, Health]]) -> None:
        self._page = page
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                text, health = server._page()
                if self.path == "/metrics":
                    self._send(200, text, CONTENT_TYPE)
                elif self.path == "/healthz":
                    self._send(200, "ok\n")
                elif self.path == "/readyz":
                    ok = health.ready
                    body = (
                        f"bpf_attached={health.bpf_attached} kafka_reachable={health.kafka_reachable} "
                        f"schemas_registered={health.schemas_registered}\n"
                    )
                    self._send(200 if ok else 503, body)
                else:
                    self._send(404, "not found\n")

            def _send(self, code: int, body: str, ctype: str = "text/plain; charset=utf-8") -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # stdlib's signature
                pass  # scrapes every few seconds would drown the log

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
