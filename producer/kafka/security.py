"""kafka.security as librdkafka settings: where the brokers are and how to reach them.

The one place these settings are made (config.py keeps them out of kafka.client), so every client —
the readers' producers, the supervisor's, the admin client, tail's consumer — connects the same way.
Secrets are read from their files at the moment a client is built (kafka/secretfiles.py).
"""

from __future__ import annotations

from typing import Any

from ..config import KafkaConfig, SecurityConfig
from . import secretfiles


def connection_config(kcfg: KafkaConfig, bootstrap_servers: str | None = None) -> dict[str, Any]:
    """What every client needs. Reads the secret files now; raises SecretFileError naming the key and path."""
    return {
        "bootstrap.servers": bootstrap_servers or kcfg.bootstrap_servers,
        **security_settings(kcfg.security),
    }


def security_settings(sec: SecurityConfig) -> dict[str, str]:
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
