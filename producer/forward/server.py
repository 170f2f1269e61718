"""The forwarder's /metrics (prometheus-client), /healthz and /readyz, on a thread of their own.

/healthz is 200 while the process lives; /readyz is 200 only while the receiver accepts (the first
probe passed and the last attempt was not a failure being retried), else 503 with the reason.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from .books import Books

StartResponse = Callable[..., Any]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # stdlib's signature
        pass  # scrapes and probes every few seconds would drown the log


class HealthServer:
    def __init__(self, host: str, port: int, books: Books) -> None:
        metrics = make_wsgi_app(books.registry)

        def app(environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path == "/metrics":
                return metrics(environ, start)  # type: ignore[no-any-return]
            if path == "/healthz":
                return _text(start, "200 OK", "ok\n")
            if path == "/readyz":
                if books.ready:
                    return _text(start, "200 OK", "ready\n")
                return _text(start, "503 Service Unavailable", f"not ready: {books.not_ready_reason}\n")
            return _text(start, "404 Not Found", "not found\n")

        self.httpd = make_server(host, port, app, ThreadingWSGIServer, handler_class=_Quiet)
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="forward-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _text(start: StartResponse, status: str, body: str) -> list[bytes]:
    data = body.encode()
    start(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))])
    return [data]
