"""Compile the BPF module once, and refuse to run if its structs drifted from producer/records/.

One BPF module, bpf/collector.bpf.c; each event type is compiled in only when enabled. Parameters
reach the C code as -D flags built from the config (`ebpf-producer print-bpf` shows them); the
source text is never edited.

Order at start, so that no event is counted before a reader can take it: compile -> compare struct
layouts (here) -> fill the filter maps and seed what happened before us (kernel/filters.py,
kernel/seed.py) -> open the perf buffers (kernel/perfbuf.py) -> attach (kernel/attach.py). At stop:
detach first, then the readers drain.
"""

from __future__ import annotations

import ctypes as ct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import structlog

from ..config import Config
from ..errors import BpfError, LayoutDriftError
from ..records import catalog
from ..records.abi import RecordLayout
from ..records.catalog import Buffer, EventType
from ..resources import BPF_FILES, BPF_SOURCE, require
from .ringbuf import SharedRing, shared_ring

log = structlog.get_logger("loader")


def cflags(cfg: Config, bpf_dir: Path | None = None) -> list[str]:
    d = bpf_dir or require("bpf", BPF_FILES)
    return [
        f"-I{d}",
        *catalog.cflags(cfg),
        # BCC's own headers trip these on newer clang; they are not ours to fix.
        "-Wno-macro-redefined",
        "-Wno-unknown-warning-option",
    ]


def _bpf_class() -> Any:
    try:
        from bcc import BPF
    except ImportError as e:  # preflight reports this earlier with the fix; keep the translation here too
        from ..errors import BccMissingError

        raise BccMissingError(
            f"bcc: cannot import ({e}); install python3-bpfcc (scripts/host-setup.sh)"
        ) from None

    class ManualBPF(BPF):  # type: ignore[misc]
        """BPF without auto-attach of tracepoint__* functions: we attach once buffers are open."""

        def _trace_autoload(self) -> None:
            pass

    return ManualBPF


class BpfModule:
    """The compiled module, owned by the supervisor for its life (readers inherit it over fork)."""

    def __init__(self, cfg: Config, bpf_dir: Path | None = None) -> None:
        """Compiles now. Raises BpfError with the compiler's verdict (its messages are printed above)."""
        self.cfg = cfg
        d = bpf_dir or require("bpf", BPF_FILES)
        src = d / BPF_SOURCE
        try:
            self.bpf: Any = _bpf_class()(src_file=str(src).encode(), cflags=cflags(cfg, d))
        except BpfError:
            raise
        except Exception as e:  # BCC raises bare Exception; the compiler already printed why
            raise BpfError(f"bpf: compiling {src} failed ({e}); the compiler's messages are above") from None
        log.info("bpf_compiled", source=str(src), event_types=[e.name for e in catalog.enabled_streams(cfg)])

    def table(self, name: str) -> Any:
        return self.bpf[name.encode()]

    def check_layouts(self) -> None:
        """Refuse to run if producer/records/ and the compiled C structs disagree."""
        for map_name, layout in catalog.LAYOUT_MAPS.items():
            compare_layout(layout, self.table(map_name).Leaf)

    def perf_tables(self, streams: Sequence[EventType]) -> dict[int, tuple[str, Any, str]]:
        """type index -> (event type, BPF object, perf table name) of the streams with per-CPU perf
        buffers; the index is the stream's position in `streams` (the ledger's type index)."""
        return {i: (e.name, self.bpf, e.perf_table) for i, e in enumerate(streams) if e.buffer is Buffer.PERF}

    def shared_rings(self, streams: Sequence[EventType]) -> list[SharedRing]:
        """The streams with one ring buffer for all CPUs, by the same type index."""
        return [
            shared_ring(self.table(e.perf_table), i, e.name)
            for i, e in enumerate(streams)
            if e.buffer is Buffer.SHARED
        ]


def compare_layout(mirror: RecordLayout, leaf: Any) -> None:
    """Raise LayoutDriftError unless every mirrored field has the compiler's offset and size."""
    compiled = dict(_flatten(leaf, "", 0))
    ours = mirror.offsets()
    problems = []
    for name, (off, size) in ours.items():
        got = compiled.get(name)
        if got is None:
            problems.append(f"{name} missing in C")
        elif got[0] != off or (size >= 0 and got[1] != size):
            problems.append(f"{name} at {got[0]}+{got[1]} in C, {off}+{size} in producer/records/")
    extra = [n for n in compiled if n not in ours and not n.startswith("__pad")]
    if extra:
        problems.append(f"C fields not mirrored: {', '.join(extra)}")
    if problems:
        raise LayoutDriftError(
            f"bpf: struct {mirror.c_struct} drifted from producer/records/: "
            + "; ".join(problems)
            + " (update both, and the schema)"
        )


def _flatten(ctype: Any, prefix: str, base: int) -> Iterator[tuple[str, tuple[int, int]]]:
    for fname, ftype, *_ in ctype._fields_:
        desc = getattr(ctype, fname)
        path = prefix + fname
        if isinstance(ftype, type) and issubclass(ftype, ct.Structure):
            yield from _flatten(ftype, path + ".", base + desc.offset)
        else:
            yield path, (base + desc.offset, desc.size)
