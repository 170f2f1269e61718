"""The one exception tree of the package.

Every error that reaches the command line is one of these, with a message of
one line that names the fix. Third-party errors (librdkafka, BCC, YAML, the
kernel) are translated where they are raised into ours, at the boundary of
the module that calls the library (for Kafka: the package producer/kafka/)::

    ProducerError
    ├── ConfigError            bad key or value in the config file
    ├── PreflightError         the host is not ready (before any BPF is loaded)
    │   ├── PrivilegeError     missing root / CAP_BPF+CAP_PERFMON
    │   ├── TracefsError       tracefs not mounted
    │   ├── HeadersError       no kernel headers for BCC
    │   ├── BccMissingError    python3-bpfcc not importable
    │   ├── SecretFileError    a *_file of kafka.security / schema_registry / forward cannot be read
    │   └── SpoolError         spool.dir is held by another collector
    ├── KafkaClientError       the broker or the client refused (confluent_kafka.KafkaError stays in kafka/)
    │   ├── BrokerUnreachableError  no broker answered within the timeout
    │   ├── KafkaConfigError   librdkafka rejected a kafka.client setting
    │   ├── KafkaAuthError     the broker refused the SASL credentials
    │   └── KafkaTlsError      the TLS handshake failed (certificate or host name not verified)
    ├── BpfError               compiling, verifying or attaching failed
    │   └── LayoutDriftError   bpf/events.h and its mirror in producer/records/ disagree
    ├── SchemaError            a schemas/*.avsc file is missing or invalid
    │   └── PackageDataError   bpf/ or schemas/ is not where the install should have put it
    ├── RegistryError          the schema registry refused a request (auth, incompatible schema)
    │   └── RegistryUnavailableError  no answer, or a 5xx: retried at start-up, never fatal there
    ├── CriError               the node's container runtime (CRI v1) refused a request
    │   ├── RuntimeUnavailableError  no CRI socket there, or no answer within the call's deadline
    │   └── CriNotFoundError   the runtime knows no such container or pod (gone, or not a CRI one)
    └── ReceiverError          `forward`: the HTTP receiver refused the first probe for good
        ├── ReceiverAuthError  401/403: the token or password (forward.auth)
        ├── ReceiverUrlError   404/405: no such endpoint at forward.url
        └── ReceiverTlsError   its certificate is not trusted or not for the URL's host (forward.tls)

A receiver that does not answer at start is not an error: `forward` waits (not ready) and retries.

DecodeError is deliberately outside the tree: it never escapes a reader, it is
counted (decode_error) and the record is skipped.
"""

from __future__ import annotations


class ProducerError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = 1


class ConfigError(ProducerError):
    exit_code = 2


class PreflightError(ProducerError):
    exit_code = 3


class PrivilegeError(PreflightError):
    pass


class TracefsError(PreflightError):
    pass


class HeadersError(PreflightError):
    pass


class BccMissingError(PreflightError):
    pass


class SecretFileError(PreflightError):
    pass


class SpoolError(PreflightError):
    pass


class KafkaClientError(ProducerError):
    exit_code = 4


class BrokerUnreachableError(KafkaClientError):
    pass


class KafkaConfigError(KafkaClientError):
    pass


class KafkaAuthError(KafkaClientError):
    pass


class KafkaTlsError(KafkaClientError):
    pass


class BpfError(ProducerError):
    exit_code = 5


class LayoutDriftError(BpfError):
    pass


class SchemaError(ProducerError):
    exit_code = 6


class PackageDataError(SchemaError):
    """The installed package (or image) lacks its BPF sources or schemas: checked before any BPF loads."""


class RegistryError(ProducerError):
    exit_code = 7


class RegistryUnavailableError(RegistryError):
    pass


class CriError(ProducerError):
    exit_code = 8


class RuntimeUnavailableError(CriError):
    pass


class CriNotFoundError(CriError):
    pass


class ReceiverError(ProducerError):
    exit_code = 9


class ReceiverAuthError(ReceiverError):
    pass


class ReceiverUrlError(ReceiverError):
    pass


class ReceiverTlsError(ReceiverError):
    pass


class DecodeError(ValueError):
    """A raw record from a perf buffer is malformed. Counted, never raised out of a reader."""
