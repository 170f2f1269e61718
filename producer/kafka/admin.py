"""Before any BPF is loaded: is the broker there, will it take us, do the topics exist?

Every failure leaves as one of ours (errors.py) with the fix in its message: BrokerUnreachableError,
KafkaAuthError, KafkaTlsError, KafkaConfigError, or KafkaClientError for a topic that cannot be made.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource  # not re-exported for type checkers
from confluent_kafka.cimpl import NewTopic

from ..config import KafkaConfig
from ..errors import BrokerUnreachableError, KafkaAuthError, KafkaClientError, KafkaTlsError
from . import tlsprobe
from .client import new_producer, reason
from .security import connection_config

# librdkafka errors that retrying cannot fix (refused_connection); by name, so a test can hold each
# to the library's list.
AUTHENTICATION, SSL = "_AUTHENTICATION", "_SSL"
REFUSALS = (AUTHENTICATION, SSL)
_CODES = {name: getattr(KafkaError, name) for name in REFUSALS}


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
            why = reason(e)
        p.poll(0)  # serves error_cb
        refused_connection(kcfg, errors)
        if time.monotonic() >= deadline:
            break
    if errors:
        why = str(errors[-1].str())
    raise BrokerUnreachableError(
        f"kafka: no broker answered at {kcfg.bootstrap_servers} within {timeout_s:g} s ({why}); "
        "start one (make kafka-up) or fix kafka.bootstrap_servers"
    )


def refused_connection(kcfg: KafkaConfig, errors: Iterable[Any]) -> None:
    """Raise ours for an error_cb error that retrying cannot fix: bad credentials or a bad certificate."""
    sec = kcfg.security
    for err in errors:
        code, text = err.code(), str(err.str())
        if code == _CODES[AUTHENTICATION]:
            raise KafkaAuthError(
                f"kafka: authentication failed at {kcfg.bootstrap_servers} as {sec.username!r} "
                f"({sec.sasl_mechanism}): {text}; check kafka.security.username and the password "
                "in kafka.security.password_file"
            )
        if code == _CODES[SSL] or "SSL handshake failed" in text:
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


def ensure_topics(
    kcfg: KafkaConfig, topics: Iterable[str], timeout_s: float = 15.0, *, compacted: Iterable[str] = ()
) -> list[str]:
    """Create missing topics (broker defaults unless configured). Returns those created.

    `compacted`: topics that keep the latest message per key (cleanup.policy=compact), e.g. the
    processes table keyed by process_id.
    """
    compact = set(compacted)
    admin = AdminClient(connection_config(kcfg))
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as e:
        raise BrokerUnreachableError(
            f"kafka: cannot list topics at {kcfg.bootstrap_servers}: {reason(e)}"
        ) from None
    wanted = [t for t in topics if t not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                t,
                num_partitions=kcfg.topic_partitions,
                replication_factor=kcfg.topic_replication_factor,
                config={"cleanup.policy": "compact"} if t in compact else {},
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
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise KafkaClientError(
                f"kafka: cannot create topic {topic}: {reason(e)}; create it or set "
                "kafka.create_topics: false"
            ) from None
    return created


def topic_config(kcfg: KafkaConfig, topic: str, timeout_s: float = 15.0) -> dict[str, str]:
    """A topic's effective settings (cleanup.policy, retention.ms, ...)."""
    admin = AdminClient(connection_config(kcfg))
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    try:
        entries = admin.describe_configs([resource], request_timeout=timeout_s)[resource].result(timeout_s)
    except KafkaException as e:
        raise KafkaClientError(f"kafka: cannot describe topic {topic}: {reason(e)}") from None
    return {name: str(entry.value) for name, entry in entries.items()}
