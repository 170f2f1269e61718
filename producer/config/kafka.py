"""kafka and schema_registry: where events go, and the credentials (always files) to get there."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator, Field, model_validator

from .rules import Section, matches, problem, section, together

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]
SECURITY_PROTOCOLS: tuple[str, ...] = get_args(SecurityProtocol)
SASL_MECHANISMS: tuple[str, ...] = get_args(SaslMechanism)

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

ClientValue = str | int | float | bool


def _client_key_problem(k: str) -> str | None:
    if k in _RESERVED_CLIENT_KEYS:
        return (
            "is set by the collector (idempotence, acks=all and delivery reports "
            "keep the drop ledger exact); remove it"
        )
    if k in _SECURITY_CLIENT_KEYS:
        return (
            "TLS and SASL settings belong in kafka.security (secrets are read from files "
            f"there); use kafka.security.{_SECURITY_CLIENT_KEYS[k]}"
        )
    if k == "enable.ssl.certificate.verification":
        return (
            "would accept any certificate, so TLS would prove nothing; not supported "
            "(kafka.security.verify_hostname: false relaxes only the host name check)"
        )
    if k.startswith(_SECRET_CLIENT_PREFIXES) or "password" in k or "secret" in k:
        return (
            "can carry credentials or key material, which are only read from files: use "
            "kafka.security (ca_file, cert_file, key_file, key_password_file, password_file)"
        )
    return None


def _client(value: Any) -> Any:
    """kafka.client: librdkafka properties, minus those the collector or kafka.security own."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise problem("must be a mapping of librdkafka properties")
    for k, v in value.items():
        if not isinstance(k, str):
            raise problem("property names must be strings", str(k))
        why = _client_key_problem(k)
        if why:
            raise problem(why, k)  # never the value: it may be the very secret
        if not isinstance(v, ClientValue):
            raise problem(f"must be a scalar, got {type(v).__name__}", k)
    return dict(value)


def _one_of(options: tuple[str, ...]) -> str:
    return ", ".join(options[:-1]) + " or " + options[-1]


class SecurityConfig(Section):
    """TLS and SASL towards the brokers. Secrets come from files (a mounted Kubernetes Secret)."""

    protocol: SecurityProtocol = Field("PLAINTEXT", description=_one_of(SECURITY_PROTOCOLS))
    ca_file: str = Field(
        "", description="PEM CA bundle that signed the brokers' certificates (\"\" = the system's)"
    )
    cert_file: str = Field("", description="client certificate (PEM) for mutual TLS, with key_file")
    key_file: str = Field("", description="its private key (PEM)")
    key_password_file: str = Field(
        "", description="file holding the key's passphrase, if the key is encrypted"
    )
    verify_hostname: bool = Field(
        True, description="the broker's certificate must name the host in bootstrap_servers"
    )
    sasl_mechanism: SaslMechanism = Field(
        "SCRAM-SHA-512", description="SCRAM-SHA-256, SCRAM-SHA-512, or PLAIN (only with SASL_SSL)"
    )
    username: str = Field("", description="SASL user (required with SASL_*)")
    password_file: str = Field("", description="file holding the SASL password (required with SASL_*)")

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

    @model_validator(mode="after")
    def _coherent(self) -> SecurityConfig:
        if self.sasl_mechanism == "PLAIN" and self.protocol != "SASL_SSL":
            raise problem(
                "PLAIN sends the password as it is: only allowed with protocol SASL_SSL, "
                f"not {self.protocol}",
                "sasl_mechanism",
            )
        # A setting the protocol would ignore is an error: a forgotten `protocol` must not
        # silently fall back to plaintext while the file names a CA or a password.
        for name in ("username", "password_file"):
            if self.sasl and not getattr(self, name):
                raise problem(f"required with protocol {self.protocol}", name)
            if not self.sasl and getattr(self, name):
                raise problem(
                    f"only used with protocol SASL_PLAINTEXT or SASL_SSL, not {self.protocol}", name
                )
        if not self.tls:
            for name in ("ca_file", "cert_file", "key_file", "key_password_file", "verify_hostname"):
                if getattr(self, name) != type(self).model_fields[name].default:
                    raise problem(f"only used with protocol SSL or SASL_SSL, not {self.protocol}", name)
        together(self, "cert_file", "key_file")
        if self.key_password_file and not self.key_file:
            raise problem("only used with key_file", "key_password_file")
        return self


class KafkaConfig(Section):
    bootstrap_servers: Annotated[str, matches(r"\S", "must name at least one host:port")] = Field(
        "127.0.0.1:9092", description="host:port[,host:port...] of the brokers"
    )
    topic_prefix: Annotated[
        str, matches(r"^[A-Za-z0-9._-]+$", "must be letters, digits, '.', '_' or '-', got {value!r}")
    ] = Field("ebpf", description="topics: <prefix>.<event_type>, <prefix>.drops")
    # Bounded so a broker outage cannot stall a reader.
    max_block_ms: int = Field(
        1000,
        ge=0,
        le=600_000,
        description="how long a full producer queue may block a reader before the event counts as queue_full",
    )
    create_topics: bool = Field(
        True, description="create missing topics at start (broker defaults unless set below)"
    )
    topic_partitions: int = Field(
        -1, ge=-1, description="partitions of a created topic; -1 = the broker's default"
    )
    topic_replication_factor: int = Field(
        -1, ge=-1, description="replication factor of a created topic; -1 = the broker's default"
    )
    client: Annotated[dict[str, ClientValue], BeforeValidator(_client)] = Field(
        default_factory=dict,
        description="any librdkafka producer setting, e.g. {linger.ms: 50}; TLS/SASL go in security",
    )
    security: SecurityConfig = section(
        SecurityConfig,
        "TLS and SASL to the brokers; secrets only from files (docs/security.md)",
    )

    def topic(self, event_type: str) -> str:
        return f"{self.topic_prefix}.{event_type}"

    @property
    def drops_topic(self) -> str:
        return f"{self.topic_prefix}.drops"

    @property
    def containers_topic(self) -> str:
        """The node's containers (k8s.enabled), compacted, keyed by container id."""
        return f"{self.topic_prefix}.containers"

    @model_validator(mode="after")
    def _partitions(self) -> KafkaConfig:
        for name in ("topic_partitions", "topic_replication_factor"):
            if getattr(self, name) == 0:
                raise problem("must be -1 (broker default) or >= 1", name)
        return self


class SchemaRegistryConfig(Section):
    """A Confluent-compatible schema registry; with a url, messages use its wire format."""

    url: str = Field(
        "", description="e.g. https://registry:8081 (Apicurio: .../apis/ccompat/v7); no credentials in it"
    )
    username: str = Field("", description="HTTP basic auth, https only")
    password_file: str = Field("", description="file holding the basic-auth password")
    ca_file: str = Field("", description='PEM CA bundle for an https url ("" = the system\'s)')

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def files(self) -> list[tuple[str, str]]:
        names = ("password_file", "ca_file")
        return [(f"schema_registry.{n}", getattr(self, n)) for n in names if getattr(self, n)]

    @model_validator(mode="after")
    def _coherent(self) -> SchemaRegistryConfig:
        if not self.url:
            for name in ("username", "password_file", "ca_file"):
                if getattr(self, name):
                    raise problem("only used with schema_registry.url", name)
            return self
        u = urllib.parse.urlsplit(self.url)
        if u.username is not None or u.password is not None:  # first: the url is echoed below
            raise problem("must not carry credentials; use schema_registry.username and password_file", "url")
        if u.scheme not in ("http", "https") or not u.hostname:
            raise problem(f"must be an http:// or https:// URL, got {self.url!r}", "url")
        if u.query or u.fragment:
            raise problem("must not have a query or fragment", "url")
        together(self, "username", "password_file")
        if u.scheme == "http" and self.ca_file:
            raise problem("only used with an https:// url", "ca_file")
        if u.scheme == "http" and self.password_file:
            raise problem(
                "basic auth over http:// would send the password as it is; use https://", "password_file"
            )
        return self
