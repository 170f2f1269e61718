"""A batch of events on its way to the receiver, and the offsets that may be committed behind it.

Each event is in one state: PENDING (to send), ACCEPTED (the receiver took it), REJECTED (it
refused it for good: on its way to the dead-letter topic), DEAD (the dead-letter topic has it),
RELEASED (given back: its partition went to another forwarder, or the shutdown deadline passed).
ACCEPTED and DEAD are resolved. A partition's offset may be committed only up to its first
unresolved event, so nothing is ever committed that was not forwarded or dead-lettered.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field

from ..kafka.consumer import TP, Message

PENDING, ACCEPTED, REJECTED, DEAD, RELEASED = range(5)
RESOLVED = (ACCEPTED, DEAD)


@dataclass(slots=True)
class Event:
    rec: Message
    line: bytes  # its part of a body (b"" when it could not be decoded)
    state: int = PENDING
    kind: str = ""  # REJECTED: a short reason class for metrics (undecodable, http_400, item_400)
    reason: str = ""  # REJECTED: the whole reason, for the dead letter's header

    def reject(self, kind: str, reason: str) -> None:
        self.state, self.kind, self.reason = REJECTED, kind, reason


@dataclass
class Batch:
    events: list[Event] = field(default_factory=list)
    nbytes: int = 0
    started: float = 0.0  # monotonic time of its first event

    def __len__(self) -> int:
        return len(self.events)

    def add(self, ev: Event) -> None:
        if not self.events:
            self.started = time.monotonic()
        self.events.append(ev)
        self.nbytes += len(ev.line)

    def in_state(self, state: int) -> list[Event]:
        return [e for e in self.events if e.state == state]

    def unresolved(self) -> bool:
        return any(e.state in (PENDING, REJECTED) for e in self.events)

    def release(self, parts: Collection[TP] | None = None) -> list[Event]:
        """Give back the unresolved events of these partitions (all of them with None)."""
        out = []
        for e in self.events:
            if e.state in (PENDING, REJECTED) and (parts is None or (e.rec.topic, e.rec.partition) in parts):
                e.state = RELEASED
                out.append(e)
        return out


@dataclass
class Positions:
    """Per partition, the next offset after events all resolved, and the one Kafka last acknowledged."""

    done: dict[TP, int] = field(default_factory=dict)
    committed: dict[TP, int] = field(default_factory=dict)

    def advance(self, events: Iterable[Event], owned: Collection[TP]) -> None:
        """Move each owned partition's position past its resolved events, up to the first unresolved one."""
        blocked: set[TP] = set()
        for e in events:  # in consumption order, so in offset order within a partition
            tp = (e.rec.topic, e.rec.partition)
            if tp in blocked or tp not in owned:
                continue
            if e.state in RESOLVED:
                self.done[tp] = e.rec.offset + 1
            else:
                blocked.add(tp)

    def due(self, parts: Iterable[TP] | None = None) -> dict[TP, int]:
        """What to commit: positions that moved since Kafka last acknowledged them."""
        keys = self.done if parts is None else [p for p in parts if p in self.done]
        return {tp: self.done[tp] for tp in keys if self.done[tp] > self.committed.get(tp, -1)}

    def acknowledged(self, offsets: dict[TP, int]) -> None:
        self.committed.update(offsets)

    def forget(self, parts: Iterable[TP]) -> None:
        for tp in parts:
            self.done.pop(tp, None)
            self.committed.pop(tp, None)


def by_topic(events: Iterable[Event]) -> Iterator[tuple[str, int]]:
    """(topic, count) of these events, for the books."""
    counts: dict[str, int] = {}
    for e in events:
        counts[e.rec.topic] = counts.get(e.rec.topic, 0) + 1
    yield from counts.items()
