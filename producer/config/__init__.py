"""Configuration: YAML in, frozen pydantic models out, every key and value checked.

Unknown keys are errors (a typo must not silently fall back to a default), and every error is
one line naming the dotted key, e.g. ``config: readers.perf_pages: must be a power of two, got 3``.

The models are the one definition of the config: its keys, defaults, bounds and descriptions.
The chart's values.schema.json (its `config` subtree) and README's defaults block are generated
from them by ``python -m producer.config.export``; a test fails when either has drifted.

    rules.py    the vocabulary the sections are declared with (strict sections, checks with messages)
    kafka.py    kafka, kafka.security, schema_registry
    events.py   one section per event type, and EventsConfig
    k8s.py      k8s: Kubernetes attribution (the CRI socket, cluster, label allow list)
    forward.py  forward (`ebpf-producer forward`: the receiver, format, batches, retries, auth, TLS)
    model.py    filters, readers, shutdown, spool, accounting, metrics, log, and Config, the root
    load.py     load() and validate(); pydantic's errors translated into one line, in one place
    schema.py   the JSON schema of Config, self-contained
    export.py   writes the chart's schema and README's block from it
"""

from __future__ import annotations

from .events import (
    EVENT_TYPES,
    EventsConfig,
    FileOpenConfig,
    PrefixList,
    ProcessExecConfig,
    SyscallCountsConfig,
    ToggleConfig,
)
from .k8s import K8sConfig
from .kafka import SASL_MECHANISMS, SECURITY_PROTOCOLS, KafkaConfig, SchemaRegistryConfig, SecurityConfig
from .load import load, validate
from .model import (
    AccountingConfig,
    CgroupList,
    Config,
    FiltersConfig,
    IdList,
    LogConfig,
    MetricsConfig,
    NameList,
    PidList,
    ReadersConfig,
    ShutdownConfig,
    SpoolConfig,
    parse_listen,
)

__all__ = [
    "EVENT_TYPES",
    "SASL_MECHANISMS",
    "SECURITY_PROTOCOLS",
    "AccountingConfig",
    "CgroupList",
    "Config",
    "EventsConfig",
    "FileOpenConfig",
    "FiltersConfig",
    "IdList",
    "K8sConfig",
    "KafkaConfig",
    "LogConfig",
    "MetricsConfig",
    "NameList",
    "PidList",
    "PrefixList",
    "ProcessExecConfig",
    "ReadersConfig",
    "SchemaRegistryConfig",
    "SecurityConfig",
    "ShutdownConfig",
    "SpoolConfig",
    "SyscallCountsConfig",
    "ToggleConfig",
    "load",
    "parse_listen",
    "validate",
]
