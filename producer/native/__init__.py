"""The native data plane: a reader's perf rings -> Avro -> Kafka in C (producer/native/src).

Python stays the control plane (config, loader, supervisor, reports, metrics, CLI) and
builds, per reader, an engine that reads the per-CPU rings in place, decodes and encodes
each record, produces it with librdkafka and counts every outcome in the shared arena,
with no Python call per record or per delivery report (docs/design.md, "The native
data plane"). The Python path (producer/reader/ with the fast encoders of producer/records/)
stays the reference and the fallback.

`readers.data_plane` chooses: `python`; `native` (an error if it cannot run); `auto`
(the default): native when the extension loads and covers every enabled event type,
else python, said in one log line. The supervisor decides once, before any BPF loads;
every reader then runs the plane it is told.

This module stays light: the config imports NATIVE_TYPES from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config

# Event types with a native encoder (TYPES in src/records.c, each family's in src/records_<family>.c):
# every stream type of the per-CPU perf rings (process_exec without inline ancestors: gaps). The
# processes stream, a BPF ring buffer shared by every CPU, is read beside the engine in Python (plane.py).
# tests/unit/test_native_encode.py holds each one byte for byte equal to the type's fast encoder
# (producer/records/), tests/unit/test_native_sanitizers.py fuzzes each under the sanitizers.
NATIVE_TYPES = frozenset(
    {"process_exec", "process_exit", "process_fork", "file_open", "tcp_connect", "tcp_accept", "tcp_close"}
)

NATIVE = "native"
PYTHON = "python"


@dataclass(frozen=True)
class Choice:
    """The data plane every reader runs, and why."""

    active: str  # NATIVE or PYTHON
    wanted: str  # readers.data_plane
    reason: str = ""  # why python, when auto fell back
    library: str = ""  # the librdkafka the native plane uses

    @property
    def fallback(self) -> bool:
        """auto wanted native and could not have it because the extension does not work here."""
        return self.wanted == "auto" and self.active == PYTHON and self.reason.startswith("unavailable")


def gaps(cfg: Config) -> list[str]:
    """What the config enables that the native plane does not do yet; each item names the setting."""
    from ..records.catalog import BY_NAME, Buffer

    missing = []
    # a shared ring (the processes stream) is read beside the engine with the Python handler (plane.py)
    uncovered = [
        t for t in cfg.events.streams() if t not in NATIVE_TYPES and BY_NAME[t].buffer is not Buffer.SHARED
    ]
    if uncovered:
        missing.append(f"no native encoder yet for {', '.join(uncovered)} (events.<type>.enabled: false)")
    # an exec's ancestors are read from the kernel's process table per record, in Python
    if "process_exec" in cfg.events.streams() and cfg.events.get("process_exec").ancestors > 0:
        missing.append("no native inline ancestors yet (events.process_exec.ancestors: 0)")
    return missing


class UnavailableError(Exception):
    """The extension is missing or cannot reach librdkafka here."""


def probe() -> str:
    """Load the extension and check it against this install. Returns the librdkafka library it uses.

    Raises UnavailableError with the reason.
    """
    try:
        from . import _dataplane
    except ImportError as e:
        raise UnavailableError(f"the extension is not built ({e})") from None
    from ..kafka.client import librdkafka_module
    from .tables import layout_drift

    drift = layout_drift(_dataplane.layout())
    if drift:
        raise UnavailableError(f"its record layout differs from producer/records/ ({drift})")
    try:
        _version, _num, library = _dataplane.probe(librdkafka_module())
    except OSError as e:
        raise UnavailableError(f"librdkafka: {e}") from None
    return str(library)


def select(cfg: Config) -> Choice:
    """Which data plane the readers run. Raises PackageDataError when native is required and cannot run."""
    from ..errors import PackageDataError

    wanted = cfg.readers.data_plane
    if wanted == PYTHON:
        return Choice(PYTHON, wanted, "configured")
    missing = gaps(cfg)
    if missing:  # `native` with these is a config error already (producer/config/model.py)
        return Choice(PYTHON, wanted, "; ".join(missing))
    try:
        library = probe()
    except UnavailableError as e:
        if wanted == NATIVE:
            raise PackageDataError(
                f"readers.data_plane: native cannot run here: {e}; install a build with the extension "
                "(make setup, or the wheel built with librdkafka-dev) or set readers.data_plane: auto"
            ) from None
        return Choice(PYTHON, wanted, f"unavailable: {e}")
    return Choice(NATIVE, wanted, library=library)
