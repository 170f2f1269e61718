"""The shared ring: one BPF ring buffer for all CPUs (the processes stream), read by one reader.

A perf buffer per CPU keeps each CPU's order; a ring buffer keeps the kernel's order across CPUs,
which the processes topic needs (an image's exec and exit may run on different CPUs, and the exit
must not overtake the exec on a compacted topic). Like the perf rings it survives its reader: the
consumer position lives in the map's own pages, so a reader that maps it after a crash continues
where its predecessor stopped, and the records it had not taken are still there.

Nothing is opened in the supervisor (the map is the ring); the reader maps it through libbcc's
ring buffer manager after the fork, with a callback that must never raise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import BpfError

SampleHandler = Callable[[Any, int, int], None]  # (cookie, data pointer, size), as the perf rings'


@dataclass(frozen=True)
class SharedRing:
    type_idx: int
    event_type: str
    fd: int  # the ring buffer map's fd, inherited over fork


def shared_ring(table: Any, type_idx: int, event_type: str) -> SharedRing:
    return SharedRing(type_idx, event_type, int(table.map_fd))


class RingPoller:
    """One reader's mapping of a shared ring."""

    def __init__(self, ring: SharedRing, on_sample: SampleHandler) -> None:
        from bcc.libbcc import _RINGBUF_CB_TYPE, lib

        def cb(cookie: Any, data: int, size: int) -> int:
            on_sample(cookie, data, size)  # never raises (reader/handler.py)
            return 0  # go on with the next record

        self._lib = lib
        self._cb = _RINGBUF_CB_TYPE(cb)  # must outlive every poll
        self._rb = lib.bpf_new_ringbuf(ring.fd, self._cb, None)
        if not self._rb:
            raise BpfError(
                f"bpf: mapping the ring buffer of {ring.event_type} failed (libbcc said why above)"
            )

    def poll(self, timeout_ms: int) -> None:
        """Wait up to timeout_ms for records, then take what is there."""
        self._lib.bpf_poll_ringbuf(self._rb, timeout_ms)

    def consume(self) -> None:
        """Take what is there, without waiting."""
        self._lib.bpf_consume_ringbuf(self._rb)
