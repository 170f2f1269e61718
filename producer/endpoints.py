"""/metrics, /healthz and /readyz on a thread of their own: what `run` (ops/metrics.py) and `forward`
(forward/forwarder.py) serve to Prometheus and to Kubernetes' probes.

/healthz is 200 while the process lives; /readyz is 200 or 503 as `ready` says, with its text as
the body; /metrics is the page `metrics` renders (prometheus-client's text format).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

Render = Callable[[], bytes]
Readiness = Callable[[], tuple[bool, str]]  # (ready, the /readyz body)


class Endpoints:
    def __init__(self, host: str, port: int, *, metrics: Render, ready: Readiness, name: str) -> None:
        """Binds now (port 0: any free port, then in .port); serves once started."""

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, metrics(), CONTENT_TYPE_PLAIN_0_0_4)
                elif path == "/healthz":
                    self._send(200, b"ok\n")
                elif path == "/readyz":
                    ok, body = ready()
                    self._send(200 if ok else 503, body.encode())
                else:
                    self._send(404, b"not found\n")

            def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # stdlib's signature
                pass  # scrapes and probes every few seconds would drown the log

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
