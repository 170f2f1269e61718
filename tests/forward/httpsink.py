"""A real HTTP(S) receiver for the forwarder's tests, on loopback: it records what it accepts and can
misbehave on demand.

Each request gets the next scripted answer (`script`), else the default: 200 and every line
recorded. Answers: ok, a status (with headers, e.g. Retry-After), slow (answer after a delay),
reset (close the connection without answering, RST), and `reject` (400 when the body holds a line
that matches). `down()` closes the listening socket (connection refused), `up()` opens it again on
the same port. With `token`, requests without `Authorization: <scheme> <token>` get 401. With a
keystore (tests/secure.py's Pki), it serves TLS.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import ssl
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Answer:
    kind: str = "ok"  # ok, status, slow, reset
    status: int = 200
    headers: dict[str, str | Callable[[], str]] = field(default_factory=dict)  # a callable: made when sent
    body: bytes = b""
    delay_s: float = 0.0


OK = Answer()


def status(code: int, body: bytes = b"", **headers: str | Callable[[], str]) -> Answer:
    return Answer("status", code, {k.replace("_", "-"): v for k, v in headers.items()}, body)


def slow(delay_s: float) -> Answer:
    return Answer("slow", delay_s=delay_s)


RESET = Answer("reset")


@dataclass
class Request:
    at: float  # monotonic
    headers: dict[str, str]
    body: bytes  # decompressed
    raw_len: int
    status: int | None  # None: reset


class HttpSink:
    def __init__(
        self,
        *,
        keystore: Path | None = None,
        client_ca: Path | None = None,
        token: str | None = None,
        scheme: str = "Bearer",
        elastic: bool = False,
    ) -> None:
        self.keystore = keystore
        self.client_ca = client_ca  # with it, a client certificate signed by this CA is required
        self.in_progress = 0  # requests being answered now
        self._conns: set[socket.socket] = set()
        self.expected_auth = f"{scheme} {token}" if token else None
        self.elastic = elastic  # answer like _bulk: {"errors": ..., "items": [...]}
        self.script: deque[Answer] = deque()
        self.default = OK
        self.reject: Callable[[dict[str, Any]], bool] | None = None  # 400 for a body with such a line
        self.item_status: Callable[[dict[str, Any]], int] | None = None  # elastic: per-document status
        self.requests: list[Request] = []
        self.accepted: list[dict[str, Any]] = []  # every event of every 2xx answer, in order
        self.lock = threading.Lock()
        self.port = 0
        self._httpd: ThreadingHTTPServer | None = None
        self.up()

    @property
    def url(self) -> str:
        scheme = "https" if self.keystore else "http"
        host = "localhost" if self.keystore else "127.0.0.1"
        return f"{scheme}://{host}:{self.port}/ingest"

    # -- lifecycle -----------------------------------------------------------------------------

    def up(self) -> None:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body leave in two writes: without this, Nagle holds the body for the
            # client's delayed ACK (40 ms a request)
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                with sink.lock:
                    sink._conns.add(self.connection)

            def finish(self) -> None:
                with sink.lock:
                    sink._conns.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                sink._handle(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        httpd = Server(("127.0.0.1", self.port), Handler)
        if self.keystore is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.keystore)
            if self.client_ca is not None:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(self.client_ca)
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        self.port = int(httpd.server_address[1])
        self._httpd = httpd
        threading.Thread(target=httpd.serve_forever, name="httpsink", daemon=True).start()

    def down(self) -> None:
        """Stop listening: new connections are refused, open keep-alive ones are closed."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)

    # -- what it saw ---------------------------------------------------------------------------

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.accepted)

    def ids(self) -> list[str]:
        return [e["event_id"] for e in self.events()]

    def wait_for(self, predicate: Callable[[HttpSink], bool], timeout: float, what: str = "") -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate(self):
                return
            time.sleep(0.2)
        raise AssertionError(
            f"receiver: timed out waiting for {what or predicate}; {len(self.events())} events"
        )

    # -- one request ---------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.in_progress += 1
        try:
            self._handle_one(h)
        finally:
            with self.lock:
                self.in_progress -= 1

    def _handle_one(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body = gzip.decompress(raw) if h.headers.get("Content-Encoding") == "gzip" else raw
        headers = {k: v for k, v in h.headers.items()}
        with self.lock:
            answer = self.script.popleft() if self.script else self.default
        req = Request(time.monotonic(), headers, body, len(raw), None)
        if answer.kind == "reset":
            with self.lock:
                self.requests.append(req)
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.close_connection = True
            h.connection.close()
            return
        if answer.kind == "slow":
            time.sleep(answer.delay_s)
        if h.path != "/ingest":
            code, out, extra = 404, b'{"error":"no such endpoint"}', {}
        else:
            code, out, extra = self._answer(answer, headers, body)
        req.status = code
        with self.lock:
            self.requests.append(req)
        h.send_response(code)
        for k, v in {"Content-Type": "application/json", **extra}.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(out)))
        h.end_headers()
        # The forwarder may have given up waiting (a slow answer): what it sent is recorded all the same.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            h.wfile.write(out)

    def _answer(
        self, answer: Answer, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        if self.expected_auth is not None and headers.get("Authorization") != self.expected_auth:
            return 401, b'{"text":"Invalid token","code":4}', {}
        if answer.kind == "status":
            return (
                answer.status,
                answer.body,
                {k: v() if callable(v) else v for k, v in answer.headers.items()},
            )
        lines = [json.loads(ln) for ln in body.splitlines() if ln.strip()]
        if self.elastic:
            return self._bulk(lines)
        if self.reject is not None and any(self.reject(d) for d in lines):
            return 400, b'{"error":"refused an event"}', {}
        with self.lock:
            self.accepted.extend(lines)
        return 200, b'{"text":"Success","code":0}', {}

    def _bulk(self, lines: list[dict[str, Any]]) -> tuple[int, bytes, dict[str, str]]:
        """Elastic's _bulk: action/document pairs; 409 for an _id it has already."""
        if not lines:
            return 400, b'{"error":{"type":"parse_exception","reason":"request body is required"}}', {}
        items, errors = [], False
        with self.lock:
            have = {d["event_id"] for d in self.accepted}
            for action, doc in zip(lines[::2], lines[1::2], strict=True):
                meta = action["create"]
                code = self.item_status(doc) if self.item_status else 201
                if code == 201 and meta["_id"] in have:
                    code = 409
                if code == 201:
                    self.accepted.append(doc)
                    have.add(meta["_id"])
                item: dict[str, Any] = {"_index": meta["_index"], "_id": meta["_id"], "status": code}
                if code >= 300:
                    errors = True
                    item["error"] = {"type": f"status_{code}", "reason": "the test receiver says so"}
                items.append({"create": item})
        return 200, json.dumps({"took": 1, "errors": errors, "items": items}).encode(), {}
