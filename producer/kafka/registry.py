"""A Confluent-compatible schema registry: register our schemas, look up ids. The HTTP boundary.

Only the two calls the collector needs, over the REST API that Confluent
Schema Registry, Apicurio (/apis/ccompat/v7), Karapace and Redpanda share::

    POST /subjects/<subject>/versions   {"schema": "..."}  -> {"id": N}   (idempotent)
    GET  /schemas/ids/<id>                                 -> {"schema": "..."}

`lookup` is every reader's of our topics (tail, forward): schema id -> Schema, asked once per id.

Subjects follow the topic-name strategy (`<topic>-value`), which is what
Confluent's serializers use by default, so their consumers find them.

Every failure leaves as RegistryUnavailableError (no answer, timeouts, 5xx:
worth retrying) or RegistryError (refused: credentials, an incompatible or
invalid schema, TLS verification: retrying will not help). The password is
only ever in the Authorization header, never in a message.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from ..config import Config, SchemaRegistryConfig
from ..errors import RegistryError, RegistryUnavailableError, SchemaError
from ..records import catalog, codec
from . import secretfiles

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"

ById = Callable[[int], codec.Schema | None]


def subject(topic: str) -> str:
    return f"{topic}-value"


def subjects(cfg: Config) -> dict[str, str]:
    """Schema name -> its subject: every enabled event type (syscall_counts too), the drop report and
    the containers topic (k8s.enabled)."""
    out = {e.schema: subject(cfg.kafka.topic(e.name)) for e in catalog.enabled(cfg)}
    out["drop_report"] = subject(cfg.kafka.drops_topic)
    if cfg.k8s.enabled:
        out["containers"] = subject(cfg.kafka.containers_topic)
    return out


class Registry:
    def __init__(self, rcfg: SchemaRegistryConfig, timeout_s: float = 10.0) -> None:
        """Reads schema_registry.password_file now (SecretFileError if it cannot)."""
        self.url = rcfg.url.rstrip("/")
        self.timeout_s = timeout_s
        self._headers = {"Content-Type": _CONTENT_TYPE, "Accept": f"{_CONTENT_TYPE}, application/json"}
        if rcfg.username:
            password = secretfiles.read("schema_registry.password_file", rcfg.password_file)
            token = base64.b64encode(f"{rcfg.username}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        self._ssl = (
            ssl.create_default_context(cafile=rcfg.ca_file or None) if self.url.startswith("https") else None
        )

    def register(self, subject: str, schema: codec.Schema) -> int:
        """The id of `schema` under `subject`, registering it if it is new there."""
        path = f"/subjects/{urllib.parse.quote(subject, safe='')}/versions"
        answer = self._request("POST", path, {"schema": schema.text}, what=f"registering {subject}")
        schema_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(schema_id, int):
            raise RegistryError(
                f"schema registry {self.url}: registering {subject} answered no id: {answer!r}"
            )
        return schema_id

    def schema_text(self, schema_id: int) -> str:
        answer = self._request("GET", f"/schemas/ids/{schema_id}", None, what=f"schema id {schema_id}")
        text = answer.get("schema") if isinstance(answer, dict) else None
        if not isinstance(text, str):
            raise RegistryError(f"schema registry {self.url}: schema id {schema_id} answered no schema")
        return text

    def _request(self, method: str, path: str, body: Any, *, what: str) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=self._headers)
        where = f"schema registry {self.url}"
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s, context=self._ssl) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raise _http_error(where, what, e.code, _server_message(e)) from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, ssl.SSLCertVerificationError):
                raise RegistryError(
                    f"{where}: TLS certificate verification failed ({e.reason.verify_message}); "
                    "check schema_registry.ca_file and the host name in schema_registry.url"
                ) from None
            raise RegistryUnavailableError(f"{where}: no answer ({e.reason})") from None
        except (TimeoutError, OSError) as e:
            raise RegistryUnavailableError(f"{where}: no answer ({e})") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise RegistryUnavailableError(f"{where}: {what}: the answer is not JSON") from None


def lookup(
    rcfg: SchemaRegistryConfig, schemas: dict[bytes, codec.Schema], *, retry_unavailable: bool = False
) -> ById:
    """Schema id -> Schema for codec.decode (Confluent-framed messages), asked of the registry once per id.

    Used by every consumer of our topics (tail, forward). An id the registry refuses raises
    ValueError, as codec.decode does for any message it cannot decode: that message's error, not
    the consumer's end. A registry that does not answer raises ValueError too, or, with
    retry_unavailable, RegistryUnavailableError: the message is fine, ask again later.
    """
    reg = Registry(rcfg)
    names = {s.canonical: s.name for s in schemas.values()}
    cache: dict[int, codec.Schema] = {}

    def by_id(schema_id: int) -> codec.Schema | None:
        if schema_id not in cache:
            try:
                text = reg.schema_text(schema_id)
                s = codec.parse_schema("", text, f"id {schema_id} at {reg.url}")
            except RegistryUnavailableError as e:
                if retry_unavailable:
                    raise
                raise ValueError(str(e)) from None
            except (RegistryError, SchemaError) as e:
                raise ValueError(str(e)) from None
            # Our own schemas keep their short names (the event type), as single-object messages do.
            cache[schema_id] = dataclasses.replace(s, name=names.get(s.canonical, str(s.parsed.get("name"))))
        return cache[schema_id]

    return by_id


def _http_error(where: str, what: str, status: int, message: str) -> RegistryError:
    detail = f"{where}: {what}: HTTP {status}" + (f" ({message})" if message else "")
    if status in (401, 403):
        return RegistryError(
            f"{detail}; check schema_registry.username and the password in schema_registry.password_file"
        )
    if status == 409:
        return RegistryError(f"{detail}; the schema is incompatible with the versions already registered")
    if status >= 500 or status in (408, 429):
        return RegistryUnavailableError(detail)
    return RegistryError(detail)


def _server_message(e: urllib.error.HTTPError) -> str:
    """The registry's own error text ({"error_code": ..., "message": ...}), on one line."""
    try:
        body = json.loads(e.read() or b"{}")
    except (ValueError, OSError):
        return ""
    msg = body.get("message", "") if isinstance(body, dict) else ""
    return " ".join(str(msg).split())[:300]
