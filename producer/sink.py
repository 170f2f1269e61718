"""Kafka: one confluent-kafka Producer per process, and the translation of its errors.

Every call into confluent-kafka that can raise sits in this module, and what
it raises leaves as our own error (errors.py) or as a counted outcome:
produce() never raises into a reader; it answers with a ledger reason.

A Producer must be created after fork(): librdkafka's threads do not survive
it. Readers build theirs in the child; the supervisor builds its own after
forking the first readers and never lets a child touch it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from confluent_kafka import KafkaError as _KErr
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from . import ledger, secretfiles, tlsprobe
from .config import KafkaConfig, SecurityConfig
from .errors import BrokerUnreachableError, KafkaAuthError, KafkaConfigError, KafkaError, KafkaTlsError

log = structlog.get_logger("sink")

DeliveryCallback = Callable[[Any, Any], None]
Headers = list[tuple[str, str | bytes | None]]

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
# Not overridable (producer/config rejects them): the ledger depends on them.
ENFORCED: dict[str, str | int | float | bool] = {"enable.idempotence": True, "acks": "all"}

PURGED = frozenset({_KErr._PURGE_QUEUE, _KErr._PURGE_INFLIGHT})


def client_config(kcfg: KafkaConfig, client_id: str, **extra: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {**DEFAULTS, **kcfg.client, **ENFORCED, **extra, **connection_config(kcfg)}
    conf["client.id"] = client_id
    return conf


def connection_config(kcfg: KafkaConfig, bootstrap_servers: str | None = None) -> dict[str, Any]:
    """Where the brokers are and how to reach them: what every client needs (producers, admin, tail).

    Reads the secret files now. Raises SecretFileError naming the key and path.
    """
    return {
        "bootstrap.servers": bootstrap_servers or kcfg.bootstrap_servers,
        **security_settings(kcfg.security),
    }


def security_settings(sec: SecurityConfig) -> dict[str, str]:
    """kafka.security as librdkafka properties (producer/config keeps these out of kafka.client)."""
    conf = {"security.protocol": sec.protocol.lower()}
    if sec.tls:
        if sec.ca_file:
            conf["ssl.ca.location"] = sec.ca_file
        if sec.cert_file:
            conf["ssl.certificate.location"] = sec.cert_file
            conf["ssl.key.location"] = sec.key_file
        if sec.key_password_file:
            conf["ssl.key.password"] = secretfiles.read(
                "kafka.security.key_password_file", sec.key_password_file
            )
        conf["ssl.endpoint.identification.algorithm"] = "https" if sec.verify_hostname else "none"
    if sec.sasl:
        conf["sasl.mechanism"] = sec.sasl_mechanism
        conf["sasl.username"] = sec.username
        conf["sasl.password"] = secretfiles.read("kafka.security.password_file", sec.password_file)
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
        raise KafkaConfigError(f"kafka.client: librdkafka rejected the configuration: {_reason(e)}") from None


def _reason(e: BaseException) -> str:
    if isinstance(e, KafkaException) and e.args and isinstance(e.args[0], _KErr):
        return str(e.args[0].str())
    return str(e)


def check_broker(kcfg: KafkaConfig, timeout_s: float = 10.0) -> int:
    """Ask the cluster for metadata; returns the number of brokers.

    Raises KafkaAuthError when the broker refuses the credentials, KafkaTlsError
    when its certificate is not accepted (both at the first refusal, not after
    the timeout), else BrokerUnreachableError.
    """
    errors: list[Any] = []
    # quiet: the error below says it all
    p = new_producer(kcfg, "ebpf-producer-preflight", quiet=True, error_cb=errors.append)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            md = p.list_topics(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
            return len(md.brokers)
        except KafkaException as e:
            reason = _reason(e)
        p.poll(0)  # serves error_cb
        refused_connection(kcfg, errors)
        if time.monotonic() >= deadline:
            break
    if errors:
        reason = str(errors[-1].str())
    raise BrokerUnreachableError(
        f"kafka: no broker answered at {kcfg.bootstrap_servers} within {timeout_s:g} s ({reason}); "
        "start one (make kafka-up) or fix kafka.bootstrap_servers"
    )


def refused_connection(kcfg: KafkaConfig, errors: Iterable[Any]) -> None:
    """Raise ours for a librdkafka error that retrying cannot fix: bad credentials or certificate."""
    sec = kcfg.security
    for err in errors:
        code, text = err.code(), str(err.str())
        if code == _KErr._AUTHENTICATION:
            raise KafkaAuthError(
                f"kafka: authentication failed at {kcfg.bootstrap_servers} as {sec.username!r} "
                f"({sec.sasl_mechanism}): {text}; check kafka.security.username and the password "
                "in kafka.security.password_file"
            )
        if code == _KErr._SSL or "SSL handshake failed" in text:
            first = kcfg.bootstrap_servers.split(",")[0]
            hint = tlsprobe.diagnose(first, sec) or _tls_hint(text)
            raise KafkaTlsError(f"kafka: TLS with {first} failed: {hint} ({text})")
        if "SSL alert" in text and "certificate" in text:
            raise KafkaTlsError(
                f"kafka: TLS with {kcfg.bootstrap_servers} failed: the broker refused our client "
                f"certificate (kafka.security.cert_file, key_file) ({text})"
            )


def _tls_hint(text: str) -> str:
    if "certificate verify failed" in text:
        return (
            "certificate verification failed: the broker's certificate or its host name is not "
            "accepted (kafka.security.ca_file, kafka.bootstrap_servers)"
        )
    return "the TLS handshake was refused (is this listener TLS?)"


def ensure_topics(kcfg: KafkaConfig, topics: Iterable[str], timeout_s: float = 15.0) -> list[str]:
    """Create missing topics (broker defaults unless configured). Returns those created."""
    admin = AdminClient(connection_config(kcfg))
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as e:
        raise BrokerUnreachableError(
            f"kafka: cannot list topics at {kcfg.bootstrap_servers}: {_reason(e)}"
        ) from None
    wanted = [t for t in topics if t not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                t, num_partitions=kcfg.topic_partitions, replication_factor=kcfg.topic_replication_factor
            )
            for t in wanted
        ],
        request_timeout=timeout_s,
    )
    created = []
    for topic, fut in futures.items():
        try:
            fut.result(timeout=timeout_s)
            created.append(topic)
        except KafkaException as e:
            err = e.args[0] if e.args else None
            if isinstance(err, _KErr) and err.code() == _KErr.TOPIC_ALREADY_EXISTS:
                continue
            raise KafkaError(
                f"kafka: cannot create topic {topic}: {_reason(e)}; create it or set "
                "kafka.create_topics: false"
            ) from None
    return created


class Sink:
    """A reader's producer: produce() answers None (accepted) or the ledger reason it was dropped for."""

    def __init__(self, kcfg: KafkaConfig, client_id: str, should_stop: Callable[[], bool]) -> None:
        self.fatal = ""  # set by librdkafka's error callback when the producer cannot go on
        self._p = new_producer(kcfg, client_id, error_cb=self._on_error)
        self._max_block_s = kcfg.max_block_ms / 1000.0
        self._should_stop = should_stop
        # Set once the queue stayed full for max_block_ms: later records are
        # counted at once instead of each waiting the full budget again, so a
        # long outage cannot slow the reader to one record per max_block_ms.
        self._saturated = False

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes,
        headers: Headers,
        on_delivery: DeliveryCallback,
    ) -> int | None:
        p = self._p
        try:
            p.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
            self._saturated = False
            return None
        except BufferError:
            pass
        except KafkaException as e:
            return self._immediate_failure(e)
        # Waiting for room is worth it within the budget only. Once the queue stayed full that
        # long, a record must cost no wait at all, or the reader falls behind its perf rings and
        # the kernel starts dropping too.
        hurry = self._saturated or self._should_stop()
        deadline = time.monotonic() + (0.0 if hurry else self._max_block_s)
        while True:
            p.poll(0.0 if hurry else 0.005)
            try:
                p.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                self._saturated = False
                return None
            except BufferError:
                if time.monotonic() >= deadline or self._should_stop():
                    self._saturated = True
                    return ledger.QUEUE_FULL
            except KafkaException as e:
                return self._immediate_failure(e)

    def _on_error(self, err: Any) -> None:
        if err.fatal():
            self.fatal = f"{err.name()}: {err.str()}"

    @staticmethod
    def _immediate_failure(e: KafkaException) -> int:
        err = e.args[0] if e.args else None
        name = err.name() if isinstance(err, _KErr) else "other"
        return ledger.delivery_slot(name)

    def poll(self, timeout: float = 0.0) -> int:
        return int(self._p.poll(timeout))

    def __len__(self) -> int:
        return len(self._p)

    def close(self, deadline: float) -> int:
        """Flush until `deadline` (monotonic), then purge the rest and serve its callbacks.

        Returns how many messages were still unresolved afterwards (their
        delivery callbacks never ran); the caller counts those as shutdown.
        Never calls Producer.close(): that flushes without a time limit.
        """
        p = self._p
        p.flush(max(0.0, deadline - time.monotonic()))
        if len(p):
            p.purge(in_queue=True, in_flight=True, blocking=False)
            end = time.monotonic() + 1.0
            while len(p) and time.monotonic() < end:
                p.poll(0.05)
        return len(p)


def classify(err: Any) -> int:
    """A delivery report's error -> ledger reason index."""
    if err is None:
        return ledger.DELIVERED
    code = err.code()
    if code in PURGED:
        return ledger.SHUTDOWN
    return ledger.delivery_slot(err.name())


def headers_for(event_type: str, content_type: bytes, **extra: str) -> Headers:
    return [
        ("event_type", event_type.encode()),
        ("content-type", content_type),
        *((k, v.encode()) for k, v in extra.items()),
    ]
