"""One batch to the receiver: send, retry, find the events it refuses, dead-letter them.

send() posts the PENDING events of a batch until each is ACCEPTED or REJECTED, or the time is up:

- 2xx: accepted (Elastic's per-item answers may accept some, retry some, refuse some);
- 5xx, 429 (Retry-After honoured), 408, 401/403, a timeout or a broken connection: the same
  events again after a backoff with jitter, for as long as it takes (the caller's wait pauses
  the partitions, so memory stays flat);
- any other 4xx (413 too): the batch is split in halves until the refused events stand alone;
  a lone refused event is REJECTED with the receiver's answer as the reason.

dead_letter() writes the REJECTED events to <prefix>.dlq (original key, bytes and headers, plus
source_topic, source_partition, source_offset, reason, forward_group) and marks them DEAD once
Kafka acknowledged them all; on failure it waits and tries again.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import structlog

from ..kafka.publisher import Outbox, OutMessage
from ..kafka.sink import Headers
from . import formats
from .batch import ACCEPTED, DEAD, PENDING, REJECTED, Batch, Event, by_topic
from .books import Books
from .formats import Format, Rejected
from .receiver import Backoff, Receiver

log = structlog.get_logger("forward")

Wait = Callable[[float, str], None]  # (seconds, why): pause the partitions and wait, serving Kafka
Remaining = Callable[[], float | None]  # seconds left before the batch must be abandoned; None: no limit


class Delivery:
    def __init__(
        self,
        receiver: Receiver,
        fmt: Format,
        books: Books,
        backoff: Backoff,
        outbox: Outbox,
        *,
        dlq_topic: str,
        group_id: str,
        wait: Wait,
        remaining: Remaining,
    ) -> None:
        self.receiver, self.fmt, self.books, self.backoff, self.outbox = receiver, fmt, books, backoff, outbox
        self.dlq_topic, self.group_id = dlq_topic, group_id
        self._wait, self._remaining = wait, remaining

    def _out_of_time(self) -> bool:
        left = self._remaining()
        return left is not None and left <= 0

    def resolve(self, batch: Batch) -> None:
        """send, then dead_letter: every event ACCEPTED or DEAD, unless the time ran out."""
        self.send(batch)
        self.dead_letter(batch)

    def send(self, batch: Batch) -> None:
        queue: deque[list[Event]] = deque([batch.in_state(PENDING)])
        while queue:
            part = [e for e in queue[0] if e.state == PENDING]  # a rebalance may have released some
            if not part:
                queue.popleft()
                continue
            if self._out_of_time():
                return
            left = self._remaining()
            body = b"".join(e.line for e in part)
            t0 = time.monotonic()
            reply = self.receiver.post(body, None if left is None else min(left, self.receiver.timeout_s))
            status = (
                str(reply.status) if reply.status is not None else ("tls" if reply.tls_failure else "error")
            )
            self.books.request(status, time.monotonic() - t0)
            if reply.accepted:
                self.books.bump("bytes_sent", len(body))
                queue.popleft()
                retry = self._accepted(part, reply.status or 200, reply.body)
                self.books.set_ready(True)
                if retry:
                    queue.appendleft(retry)
                    self._retry_later(None, f"the receiver asked to retry {len(retry)} of {len(part)} events")
                else:
                    self.backoff.reset()
            elif reply.retryable:
                if reply.auth_refused:
                    self.receiver.reload_auth()  # a rotated Secret is picked up here
                self.books.set_ready(False, reply.describe()[:200])
                self._retry_later(reply.retry_after_s, reply.describe())
            else:
                queue.popleft()
                self.books.set_ready(True)  # it answers: what it refuses is the data
                if len(part) > 1:
                    half = len(part) // 2
                    queue.extendleft([part[half:], part[:half]])
                else:
                    part[0].reject(f"http_{reply.status}", reply.describe())

    def _accepted(self, part: list[Event], status: int, body: bytes) -> list[Event]:
        outcomes = self.fmt.outcomes(body, len(part))
        retry = []
        for i, e in enumerate(part):
            o = formats.ACCEPTED if outcomes is None else outcomes[i]
            if o == formats.ACCEPTED:
                e.state = ACCEPTED
            elif isinstance(o, Rejected):
                e.reject(o.kind, o.reason)
            else:  # formats.RETRY
                retry.append(e)
        for topic, n in by_topic(e for e in part if e.state == ACCEPTED):
            self.books.count(topic, "forwarded", n)
        return retry

    def _retry_later(self, retry_after_s: float | None, why: str) -> None:
        self.books.bump("retries")
        delay = self.backoff.next(retry_after_s)
        log.warning(
            "receiver_retry",
            url=self.receiver.url,
            attempt=self.backoff.failures,
            wait_s=round(delay, 2),
            why=why[:200],
        )
        self._wait(delay, why)

    def dead_letter(self, batch: Batch) -> None:
        while True:
            rejected = batch.in_state(REJECTED)  # again each time: a rebalance may have released some
            if not rejected or self._out_of_time():
                return
            left = self._remaining()
            err = self.outbox.send(
                [self._letter(e) for e in rejected], 10.0 if left is None else min(left, 10.0)
            )
            if err is None:
                for e in rejected:
                    e.state = DEAD
                    self.books.dead(e.rec.topic, e.kind)
                    log.info(
                        "dead_lettered",
                        topic=e.rec.topic,
                        partition=e.rec.partition,
                        offset=e.rec.offset,
                        reason=e.reason[:200],
                    )
                self.backoff.reset()
                return
            self.books.bump("dead_letter_failures")
            delay = self.backoff.next()
            log.warning(
                "dead_letter_retry",
                topic=self.dlq_topic,
                events=len(rejected),
                wait_s=round(delay, 2),
                error=err,
            )
            self._wait(delay, f"dead-letter topic {self.dlq_topic}: {err}")

    def _letter(self, e: Event) -> OutMessage:
        r = e.rec
        headers: Headers = [
            *r.headers.items(),
            ("source_topic", r.topic.encode()),
            ("source_partition", str(r.partition).encode()),
            ("source_offset", str(r.offset).encode()),
            ("reason", e.reason.encode()),
            ("forward_group", self.group_id.encode()),
        ]
        return OutMessage(self.dlq_topic, r.value, r.key, headers)
