"""The config's root and its remaining sections: filters, readers, shutdown, accounting, metrics, log."""

from __future__ import annotations

import os
import socket
from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field, model_validator

from .. import native
from ..errors import ConfigError
from .events import EventsConfig
from .forward import ForwardConfig
from .k8s import K8sConfig
from .kafka import KafkaConfig, SchemaRegistryConfig
from .rules import (
    LISTEN,
    Section,
    Seq,
    as_tuple,
    bad_listen,
    power_of_two,
    problem,
    says,
    section,
    split_listen,
)

# librdkafka's message timeout and its alias: with a spool, never (kafka/sink.py).
_TIMEOUT_KEYS = ("message.timeout.ms", "delivery.timeout.ms")

# A task name as the kernel keeps it (TASK_COMM_LEN 16, with its NUL).
_COMM_BYTES = 15
_U32_MAX = 0xFFFFFFFF

Id = Annotated[int, Field(ge=0, le=_U32_MAX), says("int", except_bounds=True)]
Name = Annotated[str, says("str")]
CgroupRef = Annotated[int | str, says("int or str")]


class _AllowDeny(Section):
    """Deny lists win; a non-empty allow list admits only its values."""

    compact: ClassVar[bool] = True  # one line in README's defaults block
    max_entries: ClassVar[int] = 256  # the kernel map's size (bpf/collector.bpf.c)

    @model_validator(mode="after")
    def _fits_the_kernel_map(self) -> _AllowDeny:
        allow, deny = (getattr(self, name) for name in ("allow", "deny"))  # declared by each subclass
        if len(allow) + len(deny) > self.max_entries:
            raise problem(f"too many entries (the kernel map holds {self.max_entries})")
        both = set(allow) & set(deny)
        if both:
            raise problem(f"{sorted(both, key=str)} both allowed and denied")
        return self


class NameList(_AllowDeny):
    allow: Seq[Name] = Field((), description="only these")
    deny: Seq[Name] = Field((), description="never these")

    @model_validator(mode="after")
    def _task_names(self) -> NameList:
        for i, c in enumerate((*self.allow, *self.deny)):
            if not 1 <= len(c.encode()) <= _COMM_BYTES:
                raise problem(f"a task name is 1 to {_COMM_BYTES} bytes, got {c!r}", i)
        return self


class IdList(_AllowDeny):
    allow: Seq[Id] = Field((), description="only these")
    deny: Seq[Id] = Field((), description="never these")


class PidList(IdList):
    max_entries: ClassVar[int] = 1024


class CgroupList(_AllowDeny):
    allow: Seq[CgroupRef] = Field((), description="only these")
    deny: Seq[CgroupRef] = Field((), description="never these")


class FiltersConfig(Section):
    """In-kernel filters for every event type."""

    comm: NameList = section(NameList, "task names")
    uid: IdList = section(IdList, "real user ids")
    pid: PidList = section(PidList, "process ids (tgid)")
    cgroup: CgroupList = section(CgroupList, "cgroup v2 ids, or paths relative to the cgroup2 mount")
    # No feedback loop: the collector's own processes, and a broker on this host, produce events
    # (opens, connections) because of the events they carry.
    exclude_self: bool = Field(True, description="the collector's own processes")
    exclude_local_broker: bool = Field(
        True, description="a broker listening on a bootstrap port of this host (no feedback loop)"
    )


CpuGroup = Annotated[
    tuple[Annotated[int, Field(ge=0)], ...],
    Field(min_length=1),
    BeforeValidator(as_tuple),
    says("a non-empty list of CPU numbers"),
]
CpuGroups = Annotated[
    tuple[CpuGroup, ...],
    Field(min_length=1),
    BeforeValidator(as_tuple),
    says("a non-empty list of CPU lists, e.g. [[0, 1], [2, 3]]"),
]


class ReadersConfig(Section):
    count: Annotated[Annotated[int, Field(ge=1)] | Literal["auto"], says("an integer >= 1 or 'auto'")] = (
        Field("auto", description="auto = one reader per online CPU (up to max_auto), or a number")
    )
    max_auto: int = Field(8, ge=1, description="at most this many readers with count: auto")
    cpu_groups: CpuGroups | None = Field(None, description="or explicit groups, e.g. [[0, 1], [2, 3]]")
    perf_pages: Annotated[int, power_of_two()] = Field(
        64, description="pages per CPU per event type (power of two)"
    )
    wakeup_events: int = Field(
        32, ge=1, le=4096, description="records per wakeup: batching is a ~2-3x CPU saving (see Benchmarks)"
    )
    max_latency_ms: int = Field(
        100, ge=1, le=60_000, description="...but a lone record waits at most this long before it is read"
    )
    pin: bool = Field(True, description="pin each reader to its CPUs")
    restart_backoff_initial_s: float = Field(
        0.5, gt=0, description="first wait before restarting a dead reader"
    )
    restart_backoff_max_s: float = Field(30.0, gt=0, description="the wait doubles up to this")
    data_plane: Literal["auto", "native", "python"] = Field(
        "auto",
        description="ring -> Avro -> Kafka in C (native) or Python; auto = native where it covers the "
        "config (every stream type and the spool; not yet events.process_exec.ancestors), else python",
    )

    @model_validator(mode="after")
    def _coherent(self) -> ReadersConfig:
        if self.cpu_groups is not None:
            if self.count not in ("auto", len(self.cpu_groups)):
                raise problem("conflicts with readers.cpu_groups; set one of them", "count")
            flat = [c for g in self.cpu_groups for c in g]
            if len(flat) != len(set(flat)):
                raise problem("a CPU appears in more than one group", "cpu_groups")
        if self.restart_backoff_initial_s > self.restart_backoff_max_s:
            raise problem("must be > 0 and <= restart_backoff_max_s", "restart_backoff_initial_s")
        return self


class ShutdownConfig(Section):
    timeout_s: float = Field(
        20.0, ge=1, le=600, description="drain + flush budget; the process exits within this + 5 s"
    )


class SpoolConfig(Section):
    """Where a reader keeps what Kafka cannot take now (a full queue, or no answer for after_ms)."""

    enabled: bool = Field(True, description="spool to disk instead of dropping while Kafka is away")
    dir: str = Field(
        "/var/lib/ebpf-kafka-producer",
        min_length=1,
        description="its segments (r<N>/) and the ledger files (ledger/) a restart recovers",
    )
    max_bytes: int = Field(
        1 << 30, ge=1 << 20, description="all readers together; what does not fit counts as spool_full"
    )
    after_ms: int = Field(
        2000, ge=100, le=600_000, description="no delivery report for this long with messages waiting: spool"
    )
    fsync_interval_ms: int = Field(
        1000, ge=10, le=60_000, description="a machine crash loses at most this much of the spool"
    )


class AccountingConfig(Section):
    interval_s: float = Field(10.0, ge=0.1, le=3600, description="drop report period")


def parse_listen(listen: str, key: str = "metrics.listen") -> tuple[str, int]:
    """A HOST:PORT listen key as (host, port); raises ConfigError naming the key."""
    split = split_listen(listen)
    if split is None:
        raise ConfigError(f"config: {key}: {bad_listen(listen)}")
    return split


class MetricsConfig(Section):
    listen: Annotated[str, LISTEN] = Field(
        "0.0.0.0:9464", description='/metrics, /healthz, /readyz; "" disables, port 0 picks a free one'
    )


class LogConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="debug, info, warning, error"
    )
    format: Literal["console", "json"] = Field("console", description="console (key=value) or json")


class Config(Section):
    host: str = Field("", description="node name on every event; default $NODE_NAME, then the hostname")
    kafka: KafkaConfig = section(KafkaConfig, "where events go")
    schema_registry: SchemaRegistryConfig = section(
        SchemaRegistryConfig,
        "a Confluent-compatible registry; with a url, messages use its wire format",
    )
    events: EventsConfig = section(EventsConfig, "the event types and their settings")
    filters: FiltersConfig = section(
        FiltersConfig,
        "in the kernel, for every event type; deny wins, a non-empty allow admits only its values",
    )
    readers: ReadersConfig = section(ReadersConfig, "the processes reading the perf buffers")
    shutdown: ShutdownConfig = section(ShutdownConfig, "SIGTERM and SIGINT")
    spool: SpoolConfig = section(SpoolConfig, "the on-disk buffer for broker outages (docs/design.md)")
    accounting: AccountingConfig = section(AccountingConfig, "the drop ledger")
    metrics: MetricsConfig = section(MetricsConfig, "the HTTP endpoint")
    log: LogConfig = section(LogConfig, "structured logs on stderr")
    k8s: K8sConfig = section(
        K8sConfig, "Kubernetes attribution from the node's CRI socket (docs/kubernetes.md)"
    )
    forward: ForwardConfig = section(
        ForwardConfig, "`ebpf-producer forward`: the event topics, at least once, to an HTTP endpoint"
    )

    @property
    def hostname(self) -> str:
        """The node name stamped on every event: config, then $NODE_NAME (set by the chart), then uname."""
        return self.host or os.environ.get("NODE_NAME", "") or socket.gethostname()

    @model_validator(mode="after")
    def _something_to_collect(self) -> Config:
        # The readers and the ledger are built around perf streams: an aggregate alone has none.
        if not self.events.enabled_types():
            raise problem("no event type is enabled; enable at least one (events.<type>.enabled)", "events")
        if not self.events.streams():
            raise problem(
                "syscall_counts needs at least one other event type enabled (events.<type>.enabled)", "events"
            )
        missing = native.gaps(self) if self.readers.data_plane == "native" else []
        if missing:
            raise problem(
                f"native cannot run this config yet: {'; '.join(missing)}; or use auto (the Python plane "
                "for such a config)",
                "readers",
                "data_plane",
            )
        for key in _TIMEOUT_KEYS:
            if self.spool.enabled and key in self.kafka.client:
                raise problem(
                    "is set by the collector while spool.enabled (0: a message that timed out could only "
                    "be sent again behind newer ones); remove it, or set spool.enabled: false",
                    "kafka",
                    "client",
                    key,
                )
        return self
