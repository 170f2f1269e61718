"""Configuration: YAML in, frozen dataclasses out, every key and value checked.

Unknown keys are errors (a typo must not silently fall back to a default).
Every error is one line naming the dotted key, e.g.
``config: readers.perf_pages: must be a power of two, got 3``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import socket
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .records.catalog import EVENT_TYPE_IDS

# librdkafka settings the collector owns: overriding them would break the
# ledger (delivery reports, idempotence) rather than tune it.
_RESERVED_CLIENT_KEYS = frozenset(
    {
        "enable.idempotence",
        "acks",
        "request.required.acks",
        "bootstrap.servers",
        "on_delivery",
        "error_cb",
        "dr_cb",
        "dr_msg_cb",
        "delivery.report.only.error",
    }
)

# librdkafka settings that kafka.security owns: they carry secrets, which are
# only ever read from files, never written into the config (or logged with it).
_SECURITY_CLIENT_KEYS = {
    "security.protocol": "protocol",
    "ssl.ca.location": "ca_file",
    "ssl.certificate.location": "cert_file",
    "ssl.key.location": "key_file",
    "ssl.key.password": "key_password_file",
    "ssl.endpoint.identification.algorithm": "verify_hostname",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.mechanisms": "sasl_mechanism",
    "sasl.username": "username",
    "sasl.password": "password_file",
}
# Anything else that can hold a credential or key material inline.
_SECRET_CLIENT_PREFIXES = ("sasl.", "ssl.key", "ssl.keystore", "ssl.certificate", "ssl.ca", "ssl_")

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN")


@dataclass(frozen=True, kw_only=True)
class SecurityConfig:
    """TLS and SASL towards the brokers. Secrets come from files (a mounted Kubernetes Secret)."""

    protocol: str = "PLAINTEXT"
    ca_file: str = ""  # PEM CA bundle that signed the brokers' certificates; "" = the system's
    cert_file: str = ""  # client certificate (PEM) for mutual TLS
    key_file: str = ""  # its private key (PEM)
    key_password_file: str = ""  # file holding the key's passphrase, if the key is encrypted
    verify_hostname: bool = True
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password_file: str = ""

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    def files(self) -> list[tuple[str, str]]:
        """(dotted key, path) of every file this section names."""
        names = ("ca_file", "cert_file", "key_file", "key_password_file", "password_file")
        return [(f"kafka.security.{n}", getattr(self, n)) for n in names if getattr(self, n)]


# Every event type, in the order topics and ledger rows are listed (bpf/events.h numbers them).
EVENT_TYPES = tuple(EVENT_TYPE_IDS)


def _items(kind: type | tuple[type, ...]) -> dict[str, Any]:
    """Metadata for a list setting: the type its items must have."""
    return {"items": kind}


@dataclass(frozen=True, kw_only=True)
class KafkaConfig:
    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = "ebpf"
    # How long produce() may wait for room in a full queue before the event is
    # counted as queue_full. Bounded so a broker outage cannot stall a reader.
    max_block_ms: int = 1000
    create_topics: bool = True
    topic_partitions: int = -1  # -1: the broker's default
    topic_replication_factor: int = -1
    client: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    security: SecurityConfig = field(default_factory=SecurityConfig)

    def topic(self, event_type: str) -> str:
        return f"{self.topic_prefix}.{event_type}"

    @property
    def drops_topic(self) -> str:
        return f"{self.topic_prefix}.drops"


@dataclass(frozen=True, kw_only=True)
class SchemaRegistryConfig:
    """A Confluent-compatible schema registry; with a url, messages use its wire format."""

    url: str = ""  # e.g. https://registry:8081 (Apicurio: https://registry:8080/apis/ccompat/v7)
    username: str = ""  # HTTP basic auth
    password_file: str = ""
    ca_file: str = ""  # PEM CA bundle for an https url; "" = the system's

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def files(self) -> list[tuple[str, str]]:
        names = ("password_file", "ca_file")
        return [(f"schema_registry.{n}", getattr(self, n)) for n in names if getattr(self, n)]


@dataclass(frozen=True, kw_only=True)
class ProcessExecConfig:
    enabled: bool = True
    max_args: int = 32
    max_arg_len: int = 128
    include_failed: bool = False


@dataclass(frozen=True, kw_only=True)
class ToggleConfig:
    enabled: bool = True


@dataclass(frozen=True, kw_only=True)
class PrefixList:
    allow: tuple[str, ...] = field(default=(), metadata=_items(str))
    deny: tuple[str, ...] = field(default=(), metadata=_items(str))


@dataclass(frozen=True, kw_only=True)
class FileOpenConfig:
    # Off by default: every open() on a node is a lot of events; enable it with path filters.
    enabled: bool = False
    include_failed: bool = True
    path_prefixes: PrefixList = field(default_factory=PrefixList)


@dataclass(frozen=True, kw_only=True)
class SyscallCountsConfig:
    # Off by default: it runs on every syscall of the node.
    enabled: bool = False
    interval_s: float = 10.0


@dataclass(frozen=True, kw_only=True)
class EventsConfig:
    process_exec: ProcessExecConfig = field(default_factory=ProcessExecConfig)
    process_exit: ToggleConfig = field(default_factory=ToggleConfig)
    process_fork: ToggleConfig = field(default_factory=ToggleConfig)
    file_open: FileOpenConfig = field(default_factory=FileOpenConfig)
    tcp_connect: ToggleConfig = field(default_factory=ToggleConfig)
    tcp_accept: ToggleConfig = field(default_factory=ToggleConfig)
    tcp_close: ToggleConfig = field(default_factory=ToggleConfig)
    syscall_counts: SyscallCountsConfig = field(default_factory=SyscallCountsConfig)

    def enabled(self) -> tuple[str, ...]:
        """Enabled event types carried by perf buffers (syscall_counts is published from a map)."""
        return tuple(n for n in EVENT_TYPES if n != "syscall_counts" and getattr(self, n).enabled)

    def enabled_types(self) -> tuple[str, ...]:
        """Every enabled event type, the aggregate included: each has a topic, a schema and a subject."""
        return tuple(n for n in EVENT_TYPES if getattr(self, n).enabled)


@dataclass(frozen=True, kw_only=True)
class IdList:
    allow: tuple[int, ...] = field(default=(), metadata=_items(int))
    deny: tuple[int, ...] = field(default=(), metadata=_items(int))


@dataclass(frozen=True, kw_only=True)
class NameList:
    allow: tuple[str, ...] = field(default=(), metadata=_items(str))
    deny: tuple[str, ...] = field(default=(), metadata=_items(str))


@dataclass(frozen=True, kw_only=True)
class CgroupList:
    # cgroup v2 ids, or paths (absolute, or relative to the cgroup2 mount) resolved to ids at start
    allow: tuple[int | str, ...] = field(default=(), metadata=_items((int, str)))
    deny: tuple[int | str, ...] = field(default=(), metadata=_items((int, str)))


@dataclass(frozen=True, kw_only=True)
class FiltersConfig:
    """In-kernel filters for every event type.

    Deny lists win; a non-empty allow list admits only its values.
    """

    comm: NameList = field(default_factory=NameList)
    uid: IdList = field(default_factory=IdList)
    pid: IdList = field(default_factory=IdList)
    cgroup: CgroupList = field(default_factory=CgroupList)
    # No feedback loop: the collector's own processes, and a broker on this host, produce events
    # (opens, connections) because of the events they carry.
    exclude_self: bool = True
    exclude_local_broker: bool = True


@dataclass(frozen=True, kw_only=True)
class ReadersConfig:
    count: int | str = "auto"
    max_auto: int = 8
    cpu_groups: tuple[tuple[int, ...], ...] | None = None
    perf_pages: int = 64
    wakeup_events: int = 32
    max_latency_ms: int = 100
    pin: bool = True
    restart_backoff_initial_s: float = 0.5
    restart_backoff_max_s: float = 30.0


@dataclass(frozen=True, kw_only=True)
class ShutdownConfig:
    timeout_s: float = 20.0


@dataclass(frozen=True, kw_only=True)
class AccountingConfig:
    interval_s: float = 10.0


@dataclass(frozen=True, kw_only=True)
class MetricsConfig:
    # "" disables the endpoint; port 0 picks a free port (logged at start).
    listen: str = "0.0.0.0:9464"


@dataclass(frozen=True, kw_only=True)
class LogConfig:
    level: str = "info"
    format: str = "console"


@dataclass(frozen=True, kw_only=True)
class Config:
    host: str = ""
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    schema_registry: SchemaRegistryConfig = field(default_factory=SchemaRegistryConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    filters: FiltersConfig = field(default_factory=FiltersConfig)
    readers: ReadersConfig = field(default_factory=ReadersConfig)
    shutdown: ShutdownConfig = field(default_factory=ShutdownConfig)
    accounting: AccountingConfig = field(default_factory=AccountingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    log: LogConfig = field(default_factory=LogConfig)

    @property
    def hostname(self) -> str:
        """The node name stamped on every event: config, then $NODE_NAME (set by the chart), then uname."""
        return self.host or os.environ.get("NODE_NAME", "") or socket.gethostname()


def load(path: str | os.PathLike[str] | None) -> Config:
    """Read and validate a YAML config file; None gives the embedded defaults.

    Raises ConfigError with one line naming the key on any problem.
    """
    if path is None:
        return validate({})
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"config: cannot read {p}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config: {p}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if data is None:
        data = {}
    return validate(data)


def validate(data: Any) -> Config:
    """Build a Config from plain data (as parsed from YAML)."""
    if not isinstance(data, Mapping):
        raise ConfigError("config: the top level must be a mapping of sections")
    cfg: Config = _build(Config, data, "")
    _check(cfg)
    return cfg


def _fail(key: str, msg: str) -> ConfigError:
    return ConfigError(f"config: {key}: {msg}")


def _build(cls: Any, data: Mapping[str, Any], prefix: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if f"{key}_file" in fields:
            raise _fail(
                dotted,
                f"secrets are never written into the config; put it in a file (e.g. a mounted "
                f"Secret) and set {prefix}{key}_file to its path",
            )
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            known = ", ".join(sorted(fields))
            raise _fail(dotted, f"unknown key{hint}; known keys here: {known}")
        kwargs[key] = _convert(cls, fields[key], value, dotted)
    return cls(**kwargs)


def _convert(cls: Any, f: dataclasses.Field[Any], value: Any, dotted: str) -> Any:
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    if dataclasses.is_dataclass(default):
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise _fail(dotted, f"must be a mapping, got {type(value).__name__}")
        return _build(type(default), value, dotted + ".")
    if f.name == "client":
        return _client(value, dotted)
    if f.name == "cpu_groups":
        return _cpu_groups(value, dotted)
    if f.name == "count":
        if value == "auto":
            return value
        return _int(value, dotted, "an integer >= 1 or 'auto'")
    if isinstance(default, tuple):
        return _list(value, dotted, f.metadata["items"])
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise _fail(dotted, f"must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        return _int(value, dotted, "an integer")
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(dotted, f"must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise _fail(dotted, f"must be a string, got {value!r}")
        return value
    raise _fail(dotted, "unsupported setting")  # pragma: no cover - every field is covered above


def _int(value: Any, dotted: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(dotted, f"must be {what}, got {value!r}")
    return value


def _list(value: Any, dotted: str, kind: type | tuple[type, ...]) -> tuple[Any, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(dotted, f"must be a list, got {type(value).__name__}")
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, kind):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise _fail(f"{dotted}[{i}]", f"must be {names}, got {item!r}")
    return tuple(value)


def _client(value: Any, dotted: str) -> dict[str, str | int | float | bool]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(dotted, "must be a mapping of librdkafka properties")
    out: dict[str, str | int | float | bool] = {}
    for k, v in value.items():
        key = f"{dotted}.{k}"
        if not isinstance(k, str):
            raise _fail(key, "property names must be strings")
        if k in _RESERVED_CLIENT_KEYS:
            raise _fail(
                key,
                "is set by the collector (idempotence, acks=all and delivery reports "
                "keep the drop ledger exact); remove it",
            )
        if k in _SECURITY_CLIENT_KEYS:
            raise _fail(
                key,
                f"TLS and SASL settings belong in kafka.security (secrets are read from files "
                f"there); use kafka.security.{_SECURITY_CLIENT_KEYS[k]}",
            )
        if k == "enable.ssl.certificate.verification":
            raise _fail(
                key,
                "would accept any certificate, so TLS would prove nothing; not supported "
                "(kafka.security.verify_hostname: false relaxes only the host name check)",
            )
        if k.startswith(_SECRET_CLIENT_PREFIXES) or "password" in k or "secret" in k:
            raise _fail(
                key,
                "can carry credentials or key material, which are only read from files: use "
                "kafka.security (ca_file, cert_file, key_file, key_password_file, password_file)",
            )
        if not isinstance(v, str | int | float | bool):
            raise _fail(key, f"must be a scalar, got {type(v).__name__}")
        out[k] = v
    return out


def _cpu_groups(value: Any, dotted: str) -> tuple[tuple[int, ...], ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise _fail(dotted, "must be a non-empty list of CPU lists, e.g. [[0, 1], [2, 3]]")
    groups = []
    for i, g in enumerate(value):
        if (
            not isinstance(g, list)
            or not g
            or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in g)
        ):
            raise _fail(f"{dotted}[{i}]", f"must be a non-empty list of CPU numbers, got {g!r}")
        groups.append(tuple(g))
    return tuple(groups)


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _check(cfg: Config) -> None:
    k, r, pe = cfg.kafka, cfg.readers, cfg.events.process_exec
    if not k.bootstrap_servers.strip():
        raise _fail("kafka.bootstrap_servers", "must name at least one host:port")
    if not k.topic_prefix or any(c not in _TOPIC_CHARS for c in k.topic_prefix):
        raise _fail("kafka.topic_prefix", f"must be letters, digits, '.', '_' or '-', got {k.topic_prefix!r}")
    if not 0 <= k.max_block_ms <= 600_000:
        raise _fail("kafka.max_block_ms", f"must be between 0 and 600000, got {k.max_block_ms}")
    if k.topic_partitions == 0 or k.topic_partitions < -1:
        raise _fail("kafka.topic_partitions", "must be -1 (broker default) or >= 1")
    if k.topic_replication_factor == 0 or k.topic_replication_factor < -1:
        raise _fail("kafka.topic_replication_factor", "must be -1 (broker default) or >= 1")
    _check_security(k.security)
    _check_registry(cfg.schema_registry)
    if not _power_of_two(pe.max_args) or not 1 <= pe.max_args <= 128:
        raise _fail(
            "events.process_exec.max_args", f"must be a power of two from 1 to 128, got {pe.max_args}"
        )
    if not _power_of_two(pe.max_arg_len) or not 16 <= pe.max_arg_len <= 4096:
        raise _fail(
            "events.process_exec.max_arg_len", f"must be a power of two from 16 to 4096, got {pe.max_arg_len}"
        )
    if pe.max_args * pe.max_arg_len > 32768:
        raise _fail("events.process_exec", "max_args * max_arg_len must be <= 32768 (one perf record)")
    if not cfg.events.enabled():
        raise _fail("events", "no event type is enabled; enable at least one (events.<type>.enabled)")
    if not 0.5 <= cfg.events.syscall_counts.interval_s <= 3600:
        raise _fail("events.syscall_counts.interval_s", "must be between 0.5 and 3600")
    _check_filters(cfg.filters, cfg.events.file_open.path_prefixes)
    if r.count != "auto" and (not isinstance(r.count, int) or r.count < 1):
        raise _fail("readers.count", f"must be an integer >= 1 or 'auto', got {r.count!r}")
    if r.cpu_groups is not None and r.count not in ("auto", len(r.cpu_groups)):
        raise _fail("readers.count", "conflicts with readers.cpu_groups; set one of them")
    if r.cpu_groups is not None:
        flat = [c for g in r.cpu_groups for c in g]
        if len(flat) != len(set(flat)):
            raise _fail("readers.cpu_groups", "a CPU appears in more than one group")
    if r.max_auto < 1:
        raise _fail("readers.max_auto", "must be >= 1")
    if not _power_of_two(r.perf_pages):
        raise _fail("readers.perf_pages", f"must be a power of two, got {r.perf_pages}")
    if not 1 <= r.wakeup_events <= 4096:
        raise _fail("readers.wakeup_events", f"must be between 1 and 4096, got {r.wakeup_events}")
    if not 1 <= r.max_latency_ms <= 60_000:
        raise _fail("readers.max_latency_ms", f"must be between 1 and 60000, got {r.max_latency_ms}")
    if not 0 < r.restart_backoff_initial_s <= r.restart_backoff_max_s:
        raise _fail("readers.restart_backoff_initial_s", "must be > 0 and <= restart_backoff_max_s")
    if not 1 <= cfg.shutdown.timeout_s <= 600:
        raise _fail("shutdown.timeout_s", f"must be between 1 and 600, got {cfg.shutdown.timeout_s}")
    if not 0.1 <= cfg.accounting.interval_s <= 3600:
        raise _fail("accounting.interval_s", f"must be between 0.1 and 3600, got {cfg.accounting.interval_s}")
    if cfg.metrics.listen:
        parse_listen(cfg.metrics.listen)
    if cfg.log.level not in ("debug", "info", "warning", "error"):
        raise _fail("log.level", f"must be debug, info, warning or error, got {cfg.log.level!r}")
    if cfg.log.format not in ("console", "json"):
        raise _fail("log.format", f"must be console or json, got {cfg.log.format!r}")


def _check_security(s: SecurityConfig) -> None:
    key = "kafka.security."
    if s.protocol not in SECURITY_PROTOCOLS:
        raise _fail(key + "protocol", f"must be {_one_of(SECURITY_PROTOCOLS)}, got {s.protocol!r}")
    if s.sasl_mechanism not in SASL_MECHANISMS:
        raise _fail(key + "sasl_mechanism", f"must be {_one_of(SASL_MECHANISMS)}, got {s.sasl_mechanism!r}")
    if s.sasl_mechanism == "PLAIN" and s.protocol != "SASL_SSL":
        raise _fail(
            key + "sasl_mechanism",
            f"PLAIN sends the password as it is: only allowed with protocol SASL_SSL, not {s.protocol}",
        )
    # A setting the protocol would ignore is an error: a forgotten `protocol` must not
    # silently fall back to plaintext while the file names a CA or a password.
    if s.sasl:
        for name in ("username", "password_file"):
            if not getattr(s, name):
                raise _fail(key + name, f"required with protocol {s.protocol}")
    else:
        for name in ("username", "password_file"):
            if getattr(s, name):
                raise _fail(
                    key + name, f"only used with protocol SASL_PLAINTEXT or SASL_SSL, not {s.protocol}"
                )
    if not s.tls:
        for name in ("ca_file", "cert_file", "key_file", "key_password_file"):
            if getattr(s, name):
                raise _fail(key + name, f"only used with protocol SSL or SASL_SSL, not {s.protocol}")
        if not s.verify_hostname:
            raise _fail(key + "verify_hostname", f"only used with protocol SSL or SASL_SSL, not {s.protocol}")
    if bool(s.cert_file) != bool(s.key_file):
        raise _fail(key + ("key_file" if s.cert_file else "cert_file"), "cert_file and key_file go together")
    if s.key_password_file and not s.key_file:
        raise _fail(key + "key_password_file", "only used with key_file")


def _check_registry(r: SchemaRegistryConfig) -> None:
    key = "schema_registry."
    if not r.url:
        for name in ("username", "password_file", "ca_file"):
            if getattr(r, name):
                raise _fail(key + name, "only used with schema_registry.url")
        return
    u = urllib.parse.urlsplit(r.url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise _fail(key + "url", f"must be an http:// or https:// URL, got {r.url!r}")
    if u.username is not None or u.password is not None:
        raise _fail(key + "url", "must not carry credentials; use schema_registry.username and password_file")
    if u.query or u.fragment:
        raise _fail(key + "url", "must not have a query or fragment")
    if bool(r.username) != bool(r.password_file):
        raise _fail(
            key + ("password_file" if r.username else "username"), "username and password_file go together"
        )
    if u.scheme == "http":
        if r.ca_file:
            raise _fail(key + "ca_file", "only used with an https:// url")
        if r.password_file:
            raise _fail(
                key + "password_file",
                "basic auth over http:// would send the password as it is; use https://",
            )


def _one_of(options: tuple[str, ...]) -> str:
    return ", ".join(options[:-1]) + " or " + options[-1]


def _check_filters(f: FiltersConfig, prefixes: PrefixList) -> None:
    for name in ("comm", "uid", "pid", "cgroup"):
        lst = getattr(f, name)
        if len(lst.allow) + len(lst.deny) > (1024 if name == "pid" else 256):
            raise _fail(f"filters.{name}", "too many entries (the kernel map holds 256, 1024 for pid)")
        both = set(lst.allow) & set(lst.deny)
        if both:
            raise _fail(f"filters.{name}", f"{sorted(both, key=str)} both allowed and denied")
    for i, c in enumerate((*f.comm.allow, *f.comm.deny)):
        if not c or len(c.encode()) > 15:
            raise _fail(f"filters.comm[{i}]", f"a task name is 1 to 15 bytes, got {c!r}")
    for name in ("uid", "pid"):
        for v in (*getattr(f, name).allow, *getattr(f, name).deny):
            if not 0 <= v <= 0xFFFFFFFF:
                raise _fail(f"filters.{name}", f"{v} is not a 32-bit id")
    all_prefixes = (*prefixes.allow, *prefixes.deny)
    if len(all_prefixes) > 64 or len({len(p.encode()) for p in all_prefixes}) > 8:
        raise _fail("events.file_open.path_prefixes", "at most 64 prefixes of at most 8 distinct lengths")
    for p in all_prefixes:
        if not 1 <= len(p.encode()) <= 63:
            raise _fail("events.file_open.path_prefixes", f"a prefix is 1 to 63 bytes, got {p!r}")
    if set(prefixes.allow) & set(prefixes.deny):
        raise _fail("events.file_open.path_prefixes", "a prefix is both allowed and denied")


_TOPIC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise _fail("metrics.listen", f"must be HOST:PORT (port 0 = any free port), got {listen!r}")
    return host or "0.0.0.0", int(port)
