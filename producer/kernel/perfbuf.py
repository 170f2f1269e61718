"""Per-CPU perf buffers: the one place that reaches below BCC's public API.

BCC's PerfEventArray.open_perf_buffer opens a buffer on every CPU, reports
lost samples without saying which CPU, and ties the buffer's life to the
process that polls it. We need more: the lost count of each (event type,
CPU), readers that read only their own CPUs, and buffers that outlive a
reader, so that records a crashed reader left unread are read by its
successor instead of vanishing with it.

So the supervisor opens every (event type, CPU) buffer once, before the
readers fork, and never reads it: its mapping only keeps the ring alive.
The kernel does not copy perf ring mappings into a child (VM_DONTCOPY), but
the perf event fd is inherited, so each reader maps the same ring again
with libbcc's perf_reader_new/set_fd/mmap and reads it through its own
callbacks. All mappings of one perf event share one ring, and its read
position lives in the ring's own header page: a new reader resumes exactly
where the previous one stopped.

A ctypes callback must never raise (ctypes prints the error and drops the
record); the reader's handlers are written to that rule.
"""

from __future__ import annotations

import ctypes as ct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import BpfError

# libbcc: void (*)(void *cookie, void *raw, int size) and void (*)(void *cookie, uint64_t lost)
RAW_CB = ct.CFUNCTYPE(None, ct.c_void_p, ct.c_void_p, ct.c_int)
LOST_CB = ct.CFUNCTYPE(None, ct.c_void_p, ct.c_ulonglong)

SampleHandler = Callable[[Any, int, int], None]  # (cookie, data pointer, size)
LostHandler = Callable[[Any, int], None]  # (cookie, lost count)


@dataclass(frozen=True)
class Ring:
    index: int
    type_idx: int
    event_type: str
    cpu: int
    fd: int


def _lib() -> Any:
    from bcc.libbcc import lib

    lib.perf_reader_new.restype = ct.c_void_p
    lib.perf_reader_new.argtypes = [RAW_CB, LOST_CB, ct.c_void_p, ct.c_int]
    lib.perf_reader_set_fd.restype = None
    lib.perf_reader_set_fd.argtypes = [ct.c_void_p, ct.c_int]
    lib.perf_reader_mmap.restype = ct.c_int
    lib.perf_reader_mmap.argtypes = [ct.c_void_p]
    return lib


def _noop_sample(_cookie: Any, _data: Any, _size: int) -> None:
    pass


def _noop_lost(_cookie: Any, _lost: int) -> None:
    pass


class PerfBuffers:
    """Every (event type, CPU) ring, opened in the supervisor and kept open for the run."""

    def __init__(
        self,
        tables: dict[int, tuple[str, Any, str]],
        cpus: Sequence[int],
        page_cnt: int,
        wakeup_events: int,
    ) -> None:
        """tables: type index -> (event type, BPF object, perf event array name) (BpfModule.perf_tables)."""
        from bcc.libbcc import _LOST_CB_TYPE, _RAW_CB_TYPE, bcc_perf_buffer_opts

        lib = _lib()
        self.page_cnt = page_cnt
        self.rings: list[Ring] = []
        self._keep: list[Any] = [_RAW_CB_TYPE(_noop_sample), _LOST_CB_TYPE(_noop_lost)]
        for type_idx, (event_type, bpf, table_name) in tables.items():
            table = bpf[table_name.encode()]
            for cpu in cpus:
                opts = bcc_perf_buffer_opts()
                opts.pid = -1
                opts.cpu = cpu
                opts.wakeup_events = wakeup_events
                reader = lib.bpf_open_perf_buffer_opts(
                    self._keep[0], self._keep[1], None, page_cnt, ct.byref(opts)
                )
                if not reader:
                    raise BpfError(
                        f"bpf: cannot open the perf buffer of {event_type} on cpu {cpu} ({page_cnt} pages); "
                        "its pages count as locked memory: lower readers.perf_pages, raise RLIMIT_MEMLOCK "
                        "or grant CAP_IPC_LOCK (libbcc printed the failing call above)"
                    )
                fd = lib.perf_reader_fd(reader)
                table[table.Key(cpu)] = table.Leaf(fd)
                self.rings.append(Ring(len(self.rings), type_idx, event_type, cpu, fd))
                self._keep.append(reader)

    def map_in_reader(
        self,
        rings: Sequence[Ring],
        on_sample: Callable[[Ring], SampleHandler],
        on_lost: Callable[[Ring], LostHandler],
    ) -> Poller:
        """In a forked reader: map `rings` again with this process's callbacks."""
        lib = _lib()
        readers, keep = [], []
        for ring in rings:
            raw_cb, lost_cb = RAW_CB(on_sample(ring)), LOST_CB(on_lost(ring))
            r = lib.perf_reader_new(raw_cb, lost_cb, None, self.page_cnt)
            if not r:
                raise BpfError(f"bpf: perf_reader_new failed for {ring.event_type} cpu {ring.cpu}")
            lib.perf_reader_set_fd(r, ring.fd)
            if lib.perf_reader_mmap(r) < 0:
                raise BpfError(
                    f"bpf: mapping the perf buffer of {ring.event_type} cpu {ring.cpu} failed "
                    f"(errno {ct.get_errno()})"
                )
            readers.append(r)
            keep += [raw_cb, lost_cb]
        return Poller(lib, readers, keep)


class Poller:
    """Polls one reader's rings."""

    def __init__(self, lib: Any, readers: Sequence[int], keep: list[Any]) -> None:
        self._lib = lib
        self._n = len(readers)
        self._arr = (ct.c_void_p * self._n)(*readers)
        self._keep = keep  # the ctypes callbacks must outlive every poll

    def poll(self, timeout_ms: int) -> None:
        """Wait up to timeout_ms for a ring to reach its wakeup_events, then read the ready rings."""
        self._lib.perf_reader_poll(self._n, self._arr, timeout_ms)

    def consume(self) -> None:
        """Read every ring whether or not it woke us: the timer drain for lone records."""
        self._lib.perf_reader_consume(self._n, self._arr)
