"""forward: `ebpf-producer forward`, the event topics at least once to an HTTP endpoint.

The receiver's secrets (a token, a basic-auth password, a client key) come from files only, as
kafka.security's do, and never travel over plain http://.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Annotated, Literal, get_args

from pydantic import Field, model_validator

from .rules import LISTEN, Section, Seq, matches, problem, section, together

Format = Literal["jsonl", "elastic_bulk", "splunk_hec"]
FORMATS: tuple[str, ...] = get_args(Format)
TokenScheme = Literal["auto", "Bearer", "Splunk", "ApiKey"]

# Query parameters that would put a credential into the URL, which is logged and shown in errors.
_SECRET_QUERY = re.compile(r"token|key|secret|password|passwd|auth|signature|sig", re.IGNORECASE)
# The one placeholder an index or sourcetype may carry.
_TEMPLATE = matches(
    r"^([^{}]|\{event_type\})*$", "may hold {{event_type}} and no other braces, got {value!r}"
)
TOPIC = matches(r"^[A-Za-z0-9._-]+$", "must be a topic name (letters, digits, '.', '_', '-'), got {value!r}")


class BatchConfig(Section):
    max_events: int = Field(500, ge=1, le=100_000, description="a batch is sent at this many events...")
    max_bytes: int = Field(
        1_048_576, ge=1024, le=64 * 1_048_576, description="...or this many bytes of body (before gzip)..."
    )
    max_wait_s: float = Field(1.0, gt=0, le=60, description="...or when its first event has waited this long")


class ForwardTlsConfig(Section):
    ca_file: str = Field(
        "", description="PEM CA bundle that signed the receiver's certificate (\"\" = the system's)"
    )
    cert_file: str = Field("", description="client certificate (PEM) for mutual TLS, with key_file")
    key_file: str = Field("", description="its private key (PEM, unencrypted)")

    @model_validator(mode="after")
    def _pair(self) -> ForwardTlsConfig:
        together(self, "cert_file", "key_file")
        return self


class ForwardAuthConfig(Section):
    token_file: str = Field("", description="file holding a token, sent as `Authorization: <scheme> <token>`")
    token_scheme: TokenScheme = Field(
        "auto", description="auto (Splunk for splunk_hec, else Bearer), Bearer, Splunk or ApiKey"
    )
    username: str = Field("", description="HTTP basic auth user, with password_file")
    password_file: str = Field("", description="file holding the basic-auth password")

    @property
    def enabled(self) -> bool:
        return bool(self.token_file or self.password_file)

    @model_validator(mode="after")
    def _one_kind(self) -> ForwardAuthConfig:
        if self.token_file and (self.username or self.password_file):
            raise problem("a token or basic auth, not both", "token_file")
        together(self, "username", "password_file")
        return self


class ElasticConfig(Section):
    index: Annotated[
        str, _TEMPLATE, matches(r"^[^A-Z\s]+$", "must be a lowercase index name, got {value!r}")
    ] = Field("ebpf-{event_type}", description="target index or data stream; {event_type} is replaced")


class SplunkConfig(Section):
    source: str = Field("ebpf-kafka-producer", description="HEC `source` of every event")
    sourcetype: Annotated[str, _TEMPLATE] = Field(
        "ebpf:{event_type}", description="HEC `sourcetype`; {event_type} is replaced"
    )
    index: str = Field("", description='HEC `index` ("" = the token\'s default index)')


class RetryConfig(Section):
    backoff_initial_s: float = Field(0.5, gt=0, le=60, description="first wait after a failed attempt")
    backoff_max_s: float = Field(30.0, gt=0, le=600, description="the wait doubles (with jitter) up to this")

    @model_validator(mode="after")
    def _ordered(self) -> RetryConfig:
        if self.backoff_initial_s > self.backoff_max_s:
            raise problem("must be <= backoff_max_s", "backoff_initial_s")
        return self


class ForwardConfig(Section):
    url: str = Field("", description="where batches are POSTed, http:// or https:// (required by forward)")
    format: Format = Field(
        "jsonl", description="jsonl (JSON lines), elastic_bulk (_bulk NDJSON) or splunk_hec"
    )
    topics: Seq[Annotated[str, TOPIC]] = Field(
        (), description="topics to forward; [] = every event topic of kafka.topic_prefix"
    )
    group_id: Annotated[
        str, matches(r"^\S+$", "must be a consumer group id without spaces, got {value!r}")
    ] = Field(
        "ebpf-producer-forward",
        description="Kafka consumer group: forwarders sharing it share the partitions",
    )
    start: Literal["earliest", "latest"] = Field(
        "earliest", description="where a new group starts reading: earliest or latest"
    )
    batch: BatchConfig = section(BatchConfig, "one POST")
    gzip: bool = Field(False, description="gzip each body (Content-Encoding: gzip)")
    timeout_s: float = Field(10.0, gt=0, le=300, description="one request's timeout (connect, send, answer)")
    tls: ForwardTlsConfig = section(
        ForwardTlsConfig, "https:// only; the receiver's certificate is always verified"
    )
    auth: ForwardAuthConfig = section(ForwardAuthConfig, "a token or basic auth; secrets only from files")
    elastic: ElasticConfig = section(ElasticConfig, "format elastic_bulk")
    splunk: SplunkConfig = section(SplunkConfig, "format splunk_hec")
    retry: RetryConfig = section(RetryConfig, "5xx, 429, 408, timeouts, connection resets")
    drain_timeout_s: float = Field(
        10.0,
        ge=0,
        le=600,
        description="SIGTERM or a rebalance: time to finish the batch before it is abandoned",
    )
    report_interval_s: float = Field(
        10.0, ge=0.1, le=3600, description="books logged and sent to <prefix>.forward"
    )
    listen: Annotated[str, LISTEN] = Field(
        "0.0.0.0:9465", description='/metrics, /healthz, /readyz of the forwarder; "" disables'
    )

    @model_validator(mode="after")
    def _coherent(self) -> ForwardConfig:
        if not self.url:
            return self
        u = urllib.parse.urlsplit(self.url)
        if u.username is not None or u.password is not None:  # first: the url is echoed below
            raise problem("must not carry credentials; use forward.auth (secrets from files)", "url")
        if any(_SECRET_QUERY.search(k) for k, _ in urllib.parse.parse_qsl(u.query, keep_blank_values=True)):
            raise problem("must not carry a credential in its query; use forward.auth.token_file", "url")
        if u.scheme not in ("http", "https") or not u.hostname:
            raise problem(f"must be an http:// or https:// URL, got {self.url!r}", "url")
        try:
            u.port  # noqa: B018 - raises on a port out of range
        except ValueError:
            raise problem(f"has an invalid port, got {self.url!r}", "url") from None
        if u.fragment:
            raise problem("must not have a fragment", "url")
        if u.scheme == "http":
            for key in ("ca_file", "cert_file"):
                if getattr(self.tls, key):
                    raise problem("only used with an https:// url", "tls", key)
            if self.auth.enabled:
                what = "token_file" if self.auth.token_file else "password_file"
                raise problem("would send the secret as it is over http://; use https://", "auth", what)
        return self
