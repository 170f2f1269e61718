"""<prefix>.containers: the node's containers, published by the supervisor, counted in the ledger.

The records come from the watcher process (producer/k8s/watch.py, one JSON line each), which the
supervisor starts, restarts with backoff when it dies, excludes from the events like a reader, and
stops at shutdown. Each record is published keyed by its container id to a compacted topic, so the
topic keeps the latest record of every container. Its ledger is in records, like an event type's,
at cpu -1:

    seen      = records the watcher handed over
    delivered = acknowledged by the broker
    dropped   = encode_error (a line that is not a record) + delivery_failed + shutdown
    in_flight = waiting for room in the producer queue, or for the broker's answer
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from ..config import Config
from ..k8s.meta import GONE, KeyFilter
from ..kafka.client import PURGE_ERRORS
from ..kafka.framing import framing
from ..kafka.publisher import QUEUE_FULL, OnResult, Publisher
from .book import KernelCounts, Snapshot

log = structlog.get_logger("supervisor")

SCHEMA = "containers"
_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
_MAX_BACKLOG = 10000  # records waiting for room in the producer queue; past this they count as queue_full


@dataclass
class Counts:
    seen: int = 0
    delivered: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    shutdown: int = 0
    encode_error: int = 0
    queue_full: int = 0
    pending: int = 0  # queued to librdkafka, not yet answered


class ContainersTopic:
    def __init__(
        self,
        cfg: Config,
        publisher: Publisher,
        host: str,
        schema_ids: Mapping[str, int],
        *,
        on_pid: Callable[[int, bool], None] = lambda _pid, _alive: None,
    ) -> None:
        """`on_pid(pid, alive)`: the watcher's pid as it starts (True) and ends (False), for the filters."""
        self.cfg = cfg
        self.publisher = publisher
        self.host = host
        self.topic = cfg.kafka.containers_topic
        self.framing = framing(SCHEMA, schema_ids)
        self.on_pid = on_pid
        self.counts = Counts()
        # container id -> the k8s field of its records (labels as k8s.labels allows), for the records
        # the supervisor builds itself (syscall_counts); a gone container's is kept k8s.retain_s
        self.labels = KeyFilter(cfg.k8s.labels)
        self._k8s: dict[str, dict[str, Any]] = {}
        self._gone: dict[str, float] = {}
        self._backlog: deque[tuple[bytes, bytes]] = deque()  # (key, value) the queue refused
        self._proc: subprocess.Popen[bytes] | None = None
        self._buf = b""
        self._failures = 0
        self._restart_at = 0.0

    # -- the watcher process -------------------------------------------------------------------

    def start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "producer.k8s.watch",
            "--k8s",
            self.cfg.k8s.model_dump_json(),
            "--node",
            self.host,
            "--parent",
            str(os.getpid()),
            "--log",
            self.cfg.log.model_dump_json(),
        ]
        # stderr is the collector's: the watcher's log lines join the supervisor's
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert self._proc.stdout is not None
        os.set_blocking(self._proc.stdout.fileno(), False)
        self._started = time.monotonic()
        self.on_pid(self._proc.pid, True)
        log.info("k8s_watch_started", pid=self._proc.pid)

    def tick(self, now: float) -> None:
        """In the supervisor's loop: take what the watcher wrote, publish, restart it when due."""
        self.flush_backlog()
        if self._proc is None:
            if now >= self._restart_at:
                self.start()
            return
        self._read()
        code = self._proc.poll()
        if code is not None:
            self._read()
            self._ended()
            if now - self._started > 60.0:
                self._failures = 0
            backoff = _BACKOFF_S[min(self._failures, len(_BACKOFF_S) - 1)]
            self._failures += 1
            self._restart_at = now + backoff
            log.warning("k8s_watch_died", exit_code=code, restart_in_s=backoff)

    def stop(self, timeout_s: float = 3.0) -> None:
        """Stop the watcher and publish what it had written."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self._proc.terminate()
        try:
            self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._read()
        self._ended()

    def _ended(self) -> None:
        assert self._proc is not None
        self.on_pid(self._proc.pid, False)
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._proc = None
        self._buf = b""

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            if line.strip():
                self.publish_line(line)

    # -- publishing ----------------------------------------------------------------------------

    def k8s_of(self, container_id: str | None) -> dict[str, Any] | None:
        """The k8s field for a record of this container (None: not a pod's, or not known yet)."""
        return None if container_id is None else self._k8s.get(container_id)

    def _remember(self, rec: dict[str, Any], now: float) -> None:
        cid = rec["container_id"]
        k8s = dict(rec["k8s"])
        k8s["labels"] = self.labels.select(k8s["labels"])
        self._k8s[cid] = k8s
        if rec["event"] == GONE:
            self._gone[cid] = now
        cutoff = now - self.cfg.k8s.retain_s
        for old in [c for c, t in self._gone.items() if t <= cutoff]:
            del self._gone[old]
            self._k8s.pop(old, None)

    def publish_line(self, line: bytes) -> None:
        """One JSON record from the watcher: encoded and published (or kept for room, or counted)."""
        self.counts.seen += 1
        try:
            rec: dict[str, Any] = json.loads(line)
            key = str(rec["container_id"]).encode()
            value = self.framing.encoder.encode(rec)
        except Exception as e:
            self.counts.encode_error += 1
            log.warning("container_record_not_encoded", error=repr(e))
            return
        self._remember(rec, time.monotonic())
        if self._backlog or not self._try(key, value):
            self._queue(key, value)

    def _try(self, key: bytes, value: bytes) -> bool:
        """True when librdkafka took it (or refused it for good); False: no room now."""
        why = self.publisher.send(self.topic, value, key, self.framing.headers, self._on_result())
        if why == QUEUE_FULL:
            return False
        if why is None:
            self.counts.pending += 1
        else:
            self._failed(why)
        return True

    def _queue(self, key: bytes, value: bytes) -> None:
        if len(self._backlog) >= _MAX_BACKLOG:
            self.counts.queue_full += 1
            return
        self._backlog.append((key, value))

    def flush_backlog(self) -> None:
        """Publish what waited for room in the producer queue, oldest first, while there is room."""
        while self._backlog:
            if not self._try(*self._backlog[0]):
                return
            self._backlog.popleft()

    def _on_result(self) -> OnResult:
        def cb(error: str | None) -> None:
            self.counts.pending -= 1
            if error is None:
                self.counts.delivered += 1
            elif error in PURGE_ERRORS:
                self.counts.shutdown += 1
            else:
                self._failed(error)

        return cb

    def _failed(self, code: str) -> None:
        self.counts.failed[code] = self.counts.failed.get(code, 0) + 1
        log.warning("container_record_not_delivered", error=code)

    def close_books(self) -> None:
        """At shutdown, after the last flush: whatever is still waiting or unanswered is shutdown."""
        c = self.counts
        c.shutdown += c.pending + len(self._backlog)
        c.pending = 0
        self._backlog.clear()

    def add_to(self, snap: Snapshot) -> None:
        """Its rows (cpu -1) and balance in a ledger snapshot."""
        c = self.counts
        snap.add_aggregate(
            SCHEMA,
            KernelCounts(0, 0, 0),
            c.seen,
            c.delivered,
            c.failed,
            c.shutdown,
            drops={"encode_error": c.encode_error, "queue_full": c.queue_full},
        )
