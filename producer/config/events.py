"""events: one section per event type, and EventsConfig, built from the event catalog.

EventsConfig has one field per catalog entry (records/catalog.py), in catalog order, described by
the entry's `doc`. A type whose section is only `enabled` needs nothing here (ToggleConfig); the
types with settings of their own name their section class in SECTIONS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import Field, create_model, model_validator

from ..records.abi import FILTER_PREFIX_MAX, PREFIX_LEN, PREFIXES
from ..records.catalog import CATALOG, EVENT_TYPE_IDS, STREAM_TYPES
from .rules import Section, Seq, power_of_two, problem, section

# Every event type, in the order topics and ledger rows are listed (bpf/events.h numbers them).
EVENT_TYPES = tuple(EVENT_TYPE_IDS)

# One perf record holds the arguments of one exec (bpf/collector.bpf.c).
_EXEC_ARGV_BYTES = 32768
# The kernel's prefix filter: a fixed-size key per distinct length (bpf/events.h).
_MAX_PREFIXES, _MAX_PREFIX_LENGTHS, _MAX_PREFIX_BYTES = FILTER_PREFIX_MAX, PREFIXES, PREFIX_LEN - 1


class ToggleConfig(Section):
    compact: ClassVar[bool] = True  # one line in README's defaults block

    enabled: bool = Field(True, description="emit this event type")


class ProcessExecConfig(Section):
    enabled: bool = Field(True, description="emit process_exec events")
    max_args: Annotated[int, power_of_two(1, 128)] = Field(
        32, description="power of two; more arguments set argv_truncated"
    )
    max_arg_len: Annotated[int, power_of_two(16, 4096)] = Field(
        128, description="power of two; longer arguments are cut and set argv_truncated"
    )
    include_failed: bool = Field(
        False, description="also emit execs that failed (retval < 0); otherwise they count as filtered"
    )

    @model_validator(mode="after")
    def _fits_one_record(self) -> ProcessExecConfig:
        if self.max_args * self.max_arg_len > _EXEC_ARGV_BYTES:
            raise problem(f"max_args * max_arg_len must be <= {_EXEC_ARGV_BYTES} (one perf record)")
        return self


class PrefixList(Section):
    compact: ClassVar[bool] = True

    allow: Seq[str] = Field((), description="only paths starting with one of these")
    deny: Seq[str] = Field((), description="never paths starting with one of these")

    @model_validator(mode="after")
    def _fits_the_kernel_filter(self) -> PrefixList:
        prefixes = (*self.allow, *self.deny)
        lengths = {len(p.encode()) for p in prefixes}
        if len(prefixes) > _MAX_PREFIXES or len(lengths) > _MAX_PREFIX_LENGTHS:
            raise problem(
                f"at most {_MAX_PREFIXES} prefixes of at most {_MAX_PREFIX_LENGTHS} distinct lengths"
            )
        for p in prefixes:
            if not 1 <= len(p.encode()) <= _MAX_PREFIX_BYTES:
                raise problem(f"a prefix is 1 to {_MAX_PREFIX_BYTES} bytes, got {p!r}")
        if set(self.allow) & set(self.deny):
            raise problem("a prefix is both allowed and denied")
        return self


class FileOpenConfig(Section):
    # Off by default: every open() on a node is a lot of events; enable it with path filters.
    enabled: bool = Field(False, description="every open() of a node is a lot: enable it with path prefixes")
    include_failed: bool = Field(True, description="opens that failed (errno) are reported too")
    path_prefixes: PrefixList = section(
        PrefixList,
        "in-kernel, e.g. {allow: [/etc/, /root/.ssh/]}; at most 8 distinct lengths",
    )


class SyscallCountsConfig(Section):
    # Off by default: it runs on every syscall of the node.
    enabled: bool = Field(False, description="an aggregate over every syscall of the node")
    interval_s: float = Field(10.0, ge=0.5, le=3600, description="how often the counts are published")


class ProcessesConfig(Section):
    enabled: bool = Field(
        True, description="the process table on Kafka: <prefix>.processes, compacted, one entry per image"
    )
    table_size: int = Field(
        32768,
        ge=1024,
        le=4_194_304,
        description="processes the kernel's process table holds (every record's identity); "
        "one started while it is full has none, counted as untracked",
    )
    ring_pages: Annotated[int, power_of_two(16, 65536)] = Field(
        256, description="pages of the processes ring buffer (one for all CPUs, read by reader 0)"
    )


# The event types with settings beyond `enabled`; the others get a ToggleConfig.
SECTIONS: dict[str, type[Section]] = {
    "process_exec": ProcessExecConfig,
    "file_open": FileOpenConfig,
    "syscall_counts": SyscallCountsConfig,
    "processes": ProcessesConfig,
}


class EventsBase(Section):
    """One section per event type (the fields: EventsConfig); nothing here relates one type to another."""

    def enabled_types(self) -> tuple[str, ...]:
        """Every enabled event type, the aggregate included: each has a topic, a schema and a subject."""
        return tuple(n for n in EVENT_TYPES if getattr(self, n).enabled)

    def streams(self) -> tuple[str, ...]:
        """Enabled event types carried by perf buffers (syscall_counts is published from a map)."""
        return tuple(n for n in self.enabled_types() if n in STREAM_TYPES)

    def get(self, event_type: str) -> Any:
        """The section of one event type."""
        return getattr(self, event_type)


def _events_model() -> type[EventsBase]:
    fields: dict[str, Any] = {
        e.name: (SECTIONS.get(e.name, ToggleConfig), section(SECTIONS.get(e.name, ToggleConfig), e.doc))
        for e in CATALOG
    }
    return create_model("EventsConfig", __base__=EventsBase, **fields)


if TYPE_CHECKING:
    EventsConfig = EventsBase
else:
    EventsConfig = _events_model()
