"""`ebpf-producer forward`: consume the event topics in a group, POST batches, commit what was forwarded.

The loop, in one thread:

    poll (a rebalance runs its callbacks here) -> decode + render each record into the batch
    -> when the batch is full (events, bytes) or due (max_wait_s): Delivery.send, then
    Delivery.dead_letter, then commit each partition up to its first unresolved event.

At least once: an offset is committed only after every event before it was accepted by the
receiver or acknowledged in the dead-letter topic; a crash at any point leaves the uncommitted
rest to be forwarded again (duplicates share their event_id). While a delivery waits to retry,
every partition is paused and the loop keeps polling (rebalances and the group's liveness), so a
receiver outage costs neither memory nor group membership.

A revoked partition: if the receiver is healthy the batch is finished first (within
drain_timeout_s), then the revoked partitions' accepted events are committed and their
unresolved ones released to the next owner. A lost partition (no longer ours) is released
without a commit. SIGTERM/SIGINT: the batch gets drain_timeout_s to finish, what was resolved is
committed, the rest released, a final report sent, exit 0.
"""

from __future__ import annotations

import signal
import time
from collections import deque
from typing import Any

import structlog
from prometheus_client import generate_latest

from ..config import EVENT_TYPES, Config, parse_listen
from ..endpoints import Endpoints
from ..errors import ConfigError, RegistryUnavailableError
from ..kafka import admin, registry
from ..kafka.consumer import TP, GroupConsumer, Message
from ..kafka.publisher import Outbox, OutMessage
from ..records import codec
from . import formats
from .batch import PENDING, RELEASED, Batch, Event, Positions, by_topic
from .books import Books
from .delivery import Delivery
from .receiver import Backoff, Receiver, Reply

log = structlog.get_logger("forward")


def topics(cfg: Config) -> tuple[str, ...]:
    """forward.topics, or every event topic of kafka.topic_prefix."""
    return cfg.forward.topics or tuple(cfg.kafka.topic(t) for t in EVENT_TYPES)


class Forwarder:
    def __init__(self, cfg: Config) -> None:
        """Checks what can be checked before anything runs: the url, the secret files, the schemas."""
        f = cfg.forward
        if not f.url:
            raise ConfigError(
                "config: forward.url: required by `ebpf-producer forward`, e.g. "
                "https://splunk:8088/services/collector/event"
            )
        self.cfg, self.f = cfg, f
        self.fmt = formats.make(f)
        self.receiver = Receiver(f, self.fmt.content_type)  # reads the secret files: SecretFileError
        self.schemas = codec.load_all()
        self.by_id = (
            registry.lookup(cfg.schema_registry, self.schemas, retry_unavailable=True)
            if cfg.schema_registry.enabled
            else None
        )
        self.topics = topics(cfg)
        self.dlq_topic = f"{cfg.kafka.topic_prefix}.dlq"
        self.report_topic = f"{cfg.kafka.topic_prefix}.forward"
        self.books = Books(group_id=f.group_id)
        self.backoff = Backoff(f.retry.backoff_initial_s, f.retry.backoff_max_s)
        self.batch = Batch()
        self.positions = Positions()
        self.assigned: set[TP] = set()
        self.held: deque[Message] = deque()  # fetched while paused: taken once the batch is settled
        self._stop_deadline: float | None = None
        self._revoke_deadline: float | None = None
        self._delivering = False
        self._in_rebalance = False
        self._next_report = 0.0
        self._consumer: GroupConsumer | None = None
        self._outbox: Outbox | None = None
        self._server: Endpoints | None = None

    # -- start and stop ------------------------------------------------------------------------

    def run(self) -> int:
        first = self.receiver.probe()  # a refusal retrying cannot fix raises here: one line, exit 9
        admin.check_broker(self.cfg.kafka)  # unreachable, refused credentials: one line, exit 4
        if self.cfg.kafka.create_topics:
            admin.ensure_topics(self.cfg.kafka, [self.dlq_topic, self.report_topic])
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        self._serve()
        self._outbox = Outbox(self.cfg.kafka, f"ebpf-producer-forward-{self.books.instance}")
        log.info(
            "forward_starting",
            url=self.receiver.url,
            format=self.f.format,
            group_id=self.f.group_id,
            topics=",".join(self.topics),
        )
        if first.retryable and not self._wait_for_receiver(first):
            return self._finish()
        self.books.set_ready(True)
        self._consumer = GroupConsumer(
            self.cfg.kafka,
            group_id=self.f.group_id,
            start=self.f.start,
            client_id=f"ebpf-producer-forward-{self.books.instance}",
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._consumer.subscribe(self.topics)
        self._loop()
        if self.batch:
            self._deliver()
        self._consumer.close()  # on_revoke runs once more: the last positions are committed there
        return self._finish()

    def _serve(self) -> None:
        if not self.f.listen:
            return
        host, port = parse_listen(self.f.listen, "forward.listen")
        books = self.books
        self._server = Endpoints(
            host,
            port,
            metrics=lambda: generate_latest(books.registry),
            ready=books.readiness,
            name="forward-http",
        )
        self._server.start()
        log.info("forward_listening", address=f"{host}:{self._server.port}")

    def _wait_for_receiver(self, reply: Reply) -> bool:
        """No answer to the first probe: not ready, probe again with backoff. False: stopped meanwhile."""
        while reply.retryable:
            self.books.set_ready(False, f"receiver: {reply.describe()[:200]}")
            delay = self.backoff.next(reply.retry_after_s)
            log.warning(
                "receiver_unreachable",
                url=self.receiver.url,
                wait_s=round(delay, 2),
                why=reply.describe()[:200],
            )
            end = time.monotonic() + delay
            while time.monotonic() < end:
                if self._stop_deadline is not None:
                    return False
                self._maybe_report()
                time.sleep(min(0.2, max(0.0, end - time.monotonic())))
            reply = self.receiver.probe()
        self.backoff.reset()
        return True

    def _on_stop_signal(self, signum: int, _frame: Any) -> None:
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + self.f.drain_timeout_s
            log.info(
                "forward_stopping", signal=signal.Signals(signum).name, drain_timeout_s=self.f.drain_timeout_s
            )

    def _finish(self) -> int:
        self._report(final=True)
        if self._outbox is not None:
            left = self._outbox.close(5.0)
            if left:
                log.warning("final_report_not_sent", messages=left)
        if self._server is not None:
            self._server.stop()
        self.receiver.close()
        log.info("forward_stopped")
        return 0

    # -- the loop ------------------------------------------------------------------------------

    def _loop(self) -> None:
        assert self._consumer is not None
        max_events, max_wait = self.f.batch.max_events, self.f.batch.max_wait_s
        while self._stop_deadline is None:
            self._maybe_report()
            room = max(1, max_events - len(self.batch))
            if self.held:
                records = [self.held.popleft() for _ in range(min(room, len(self.held)))]
            else:
                wait = 0.2 if not self.batch else min(0.2, self.batch.started + max_wait - time.monotonic())
                records = self._consumer.poll(room, max(0.0, wait))
            for rec in records:
                if self._stop_deadline is not None:
                    break  # not taken: not counted, not committed, read again by the next owner
                self._take(rec)
            if self.batch and (
                len(self.batch) >= max_events or time.monotonic() - self.batch.started >= max_wait
            ):
                self._deliver()

    def _take(self, rec: Message) -> None:
        if (rec.topic, rec.partition) not in self.assigned:
            return  # its partition was revoked while the record waited
        while True:
            try:
                schema, value = codec.decode(rec.value, self.schemas, self.by_id)
                break
            except RegistryUnavailableError as e:  # the message is fine; the registry will answer
                if self._stop_deadline is not None:
                    return
                self._wait(self.backoff.next(), f"schema registry: {e}")
                assert self._consumer is not None
                self._consumer.resume()
                if (rec.topic, rec.partition) not in self.assigned:
                    return
            except ValueError as e:
                self._admit(Event(rec, b""), "undecodable", f"undecodable: {e}")
                return
        self.backoff.reset()
        eid = formats.event_id(schema.name, value, (rec.topic, rec.partition, rec.offset))
        try:
            line = self.fmt.render(schema.name, eid, value)
        except (TypeError, ValueError) as e:
            self._admit(Event(rec, b""), "unrenderable", f"unrenderable: {e}")
            return
        if self.batch and self.batch.nbytes + len(line) > self.f.batch.max_bytes:
            self._deliver()
        self._admit(Event(rec, line))

    def _admit(self, ev: Event, kind: str = "", reason: str = "") -> None:
        if kind:
            ev.reject(kind, reason)
        self.batch.add(ev)
        self.books.count(ev.rec.topic, "consumed")

    def _deliver(self) -> None:
        """Until every event is resolved, or the shutdown deadline passed; then commit and start anew."""
        self._delivering = True
        try:
            self._delivery().resolve(self.batch)
        finally:
            self._delivering = False
        if self._stop_deadline is not None and self.batch.unresolved():
            self._release(self.batch.release(), "shutdown")
        self._commit(self.assigned)
        self.books.bump("batches")
        self.batch = Batch()
        assert self._consumer is not None
        if self._stop_deadline is None:
            self._consumer.resume()

    def _delivery(self) -> Delivery:
        assert self._outbox is not None
        return Delivery(
            self.receiver,
            self.fmt,
            self.books,
            self.backoff,
            self._outbox,
            dlq_topic=self.dlq_topic,
            group_id=self.f.group_id,
            wait=self._wait,
            remaining=self._remaining,
        )

    def _remaining(self) -> float | None:
        limits = [d for d in (self._stop_deadline, self._revoke_deadline) if d is not None]
        return min(limits) - time.monotonic() if limits else None

    def _wait(self, seconds: float, why: str) -> None:
        """Wait with every partition paused, still polling: rebalances are served, the group keeps us."""
        assert self._consumer is not None
        self._consumer.pause()
        end = time.monotonic() + seconds
        while True:
            now = time.monotonic()
            left = self._remaining()
            step = min(end - now, 0.2, left if left is not None else 0.2)
            if step <= 0:
                return
            self._maybe_report()
            if self._in_rebalance:  # no poll inside a rebalance callback
                time.sleep(step)
            else:
                self.held.extend(self._consumer.poll(500, step))

    def _commit(self, parts: set[TP]) -> None:
        assert self._consumer is not None
        self.positions.advance(self.batch.events, parts)
        offsets = self.positions.due(parts)
        err = self._consumer.commit(offsets)
        if err is None:
            self.positions.acknowledged(offsets)
        else:
            self.books.bump("commit_failures")
            log.warning("commit_failed", error=err, partitions=len(offsets))

    def _release(self, events: list[Event], why: str) -> None:
        for topic, n in by_topic(events):
            self.books.count(topic, "released", n)
        if events:
            log.info("released", events=len(events), why=why)

    # -- rebalances (inside poll) ---------------------------------------------------------------

    def _on_assign(self, parts: list[TP]) -> None:
        self.assigned.update(parts)
        assert self._consumer is not None
        self._consumer.pause_new(parts)
        log.info("partitions_assigned", partitions=_names(parts), owned=len(self.assigned))

    def _on_revoke(self, parts: list[TP]) -> None:
        revoked = set(parts)
        self._in_rebalance = True
        try:
            ours = [e for e in self.batch.events if (e.rec.topic, e.rec.partition) in revoked]
            healthy = self.books.ready and not self._delivering and self._stop_deadline is None
            if healthy and any(e.state == PENDING for e in ours):
                # Finish the batch while the partitions are still ours, within drain_timeout_s.
                self._revoke_deadline = time.monotonic() + self.f.drain_timeout_s
                try:
                    self._delivery().resolve(self.batch)
                finally:
                    self._revoke_deadline = None
            self._release(self.batch.release(revoked), "revoked")
            self._commit(revoked)
        finally:
            self._in_rebalance = False
        self._forget(revoked)
        log.info("partitions_revoked", partitions=_names(parts), owned=len(self.assigned))

    def _on_lost(self, parts: list[TP]) -> None:
        lost = set(parts)
        self._release(self.batch.release(lost), "lost")
        self._forget(lost)
        log.warning("partitions_lost", partitions=_names(parts), owned=len(self.assigned))

    def _forget(self, parts: set[TP]) -> None:
        self.assigned -= parts
        self.positions.forget(parts)
        self.held = deque(r for r in self.held if (r.topic, r.partition) not in parts)
        self.batch.events = [e for e in self.batch.events if e.state != RELEASED]

    # -- reports -------------------------------------------------------------------------------

    def _maybe_report(self) -> None:
        now = time.monotonic()
        if now >= self._next_report:
            if self._next_report:
                self._report(final=False)
            self._next_report = now + self.f.report_interval_s

    def _report(self, *, final: bool) -> None:
        report = self.books.report(final=final)
        if self._consumer is not None:
            while self._consumer.errors:
                log.warning("kafka_consumer_error", error=self._consumer.errors.popleft())
        if self._outbox is not None:
            key = f"{self.f.group_id}/{self.books.instance}".encode()
            msg = OutMessage(
                self.report_topic, Books.encode(report), key, [("content-type", b"application/json")]
            )
            if self._outbox.post(msg):
                self.books.bump("reports")


def _names(parts: list[TP]) -> str:
    return ",".join(f"{t}[{p}]" for t, p in sorted(parts))
