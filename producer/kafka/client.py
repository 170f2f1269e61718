"""librdkafka producers: the settings every one gets, its log lines, and its error names.

A Producer must be created after fork(): librdkafka's threads do not survive it. Readers build
theirs in the child (kafka/sink.py); the supervisor builds its own after forking the first readers
(kafka/publisher.py) and never lets a child touch it.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from confluent_kafka import KafkaError, KafkaException, Producer

from ..config import KafkaConfig
from ..errors import KafkaConfigError
from .security import connection_config

log = structlog.get_logger("kafka")

# Throughput-minded defaults; kafka.client may override any of them. The
# queue bound keeps memory flat through a broker outage: what does not fit is
# counted as queue_full instead of growing the heap.
DEFAULTS: dict[str, str | int | float | bool] = {
    "compression.type": "lz4",
    "linger.ms": 20,
    "batch.num.messages": 10000,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 100_000,
    "queue.buffering.max.kbytes": 65_536,
    "message.timeout.ms": 300_000,
    "socket.keepalive.enable": True,
}
# Not overridable (config.py rejects them): the ledger depends on them.
ENFORCED: dict[str, str | int | float | bool] = {"enable.idempotence": True, "acks": "all"}

# What a delivery report says of a message purged at shutdown (by name: the ledger counts it as shutdown).
PURGE_ERRORS = ("_PURGE_QUEUE", "_PURGE_INFLIGHT")
PURGED = frozenset(getattr(KafkaError, name) for name in PURGE_ERRORS)


# A reader's producer with a spool behind it (either data plane): nothing may time out inside
# librdkafka, as a message that fell out could only be sent again behind newer ones. The spool, not the
# timeout, bounds how long an outage can last (reader/spooling.py).
SPOOLING: dict[str, Any] = {"message.timeout.ms": 0}


def client_config(kcfg: KafkaConfig, client_id: str, **extra: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {**DEFAULTS, **kcfg.client, **ENFORCED, **extra, **connection_config(kcfg)}
    conf["client.id"] = client_id
    return conf


class LibrdkafkaLog:
    """librdkafka's log lines as structlog events, at most one per facility per `every_s`.

    Without it librdkafka writes its own format straight to stderr, once per
    reconnect attempt, which buries everything else during an outage.
    """

    def __init__(self, client_id: str, every_s: float = 10.0, quiet: bool = False) -> None:
        self.client_id = client_id
        self.every_s = every_s
        self.quiet = quiet
        self.suppressed = 0
        self._last: dict[str, float] = {}

    def log(self, level: int, fmt: str, *args: Any) -> None:
        facility = str(args[0]) if args else ""
        now = time.monotonic()
        if self.quiet or now - self._last.get(facility, -1e9) < self.every_s:
            self.suppressed += 1
            return
        self._last[facility] = now
        log.warning(
            "librdkafka",
            client=self.client_id,
            facility=facility,
            message=str(args[-1]) if args else fmt,
            suppressed=self.suppressed,
        )
        self.suppressed = 0


def new_producer(kcfg: KafkaConfig, client_id: str, *, quiet: bool = False, **extra: Any) -> Producer:
    """Raises KafkaConfigError with librdkafka's own words when it rejects a setting."""
    try:
        return Producer(client_config(kcfg, client_id, **extra), logger=LibrdkafkaLog(client_id, quiet=quiet))
    except (KafkaException, ValueError, TypeError) as e:
        raise KafkaConfigError(f"kafka.client: librdkafka rejected the configuration: {reason(e)}") from None


def librdkafka_module() -> str:
    """The file of confluent-kafka's C module: the native data plane reaches the librdkafka it loaded
    through it (producer/native/src/kafka.h), so one process never holds two librdkafka copies."""
    from confluent_kafka import cimpl

    return str(cimpl.__file__)


def reason(e: BaseException) -> str:
    """librdkafka's own words for a failed call."""
    if isinstance(e, KafkaException) and e.args and isinstance(e.args[0], KafkaError):
        return str(e.args[0].str())
    return str(e)


def error_name(e: KafkaException) -> str:
    """The error name (KafkaError.name(), e.g. MSG_SIZE_TOO_LARGE) a produce() call failed with."""
    err = e.args[0] if e.args else None
    return str(err.name()) if isinstance(err, KafkaError) else "other"
