"""The HTTP receiver: one httpx client with its TLS and credentials, and what each answer means.

Every request is a POST of one body to forward.url. The answer is a Reply, never an exception:
2xx accepted; 5xx, 429, 408, 401/403 (a credential being rotated), timeouts and broken
connections are worth retrying; any other 4xx refuses what was sent. The secret is read from its
file at start and again after a 401/403 (a rotated Secret), and appears only in the
Authorization header: never in a Reply, a log line or an error.
"""

from __future__ import annotations

import base64
import email.utils
import gzip
import random
import ssl
import time
from dataclasses import dataclass

import httpx

from .. import __version__
from ..config.forward import ForwardConfig
from ..errors import ReceiverAuthError, ReceiverTlsError, ReceiverUrlError, SecretFileError
from ..kafka import secretfiles

# Retry-After is honoured up to this (a receiver's typo must not park the forwarder for a day).
RETRY_AFTER_MAX_S = 3600.0
_EXCERPT = 300


@dataclass(frozen=True)
class Reply:
    status: int | None  # None: no HTTP answer at all
    body: bytes = b""
    error: str = ""  # why there was no answer (timeout, refused, reset, TLS)
    retry_after_s: float | None = None
    tls_failure: bool = False

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def auth_refused(self) -> bool:
        return self.status in (401, 403)

    @property
    def retryable(self) -> bool:
        s = self.status
        return s is None or s >= 500 or s in (408, 429) or self.auth_refused

    def describe(self) -> str:
        if self.status is None:
            return self.error
        text = " ".join(self.body[:_EXCERPT].decode("utf-8", "replace").split())
        return f"HTTP {self.status}" + (f": {text}" if text else "")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds to wait: delay-seconds or an HTTP date (RFC 9110 10.2.3); None if bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_MAX_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT even when it does not say so
        return None
    wait = when.timestamp() - (time.time() if now is None else now)
    return min(max(wait, 0.0), RETRY_AFTER_MAX_S)


class Backoff:
    """Exponential backoff with jitter: the n-th wait is uniform in [d/2, d], d = min(max, initial * 2^n).

    Jitter keeps several forwarders from retrying in lockstep against a receiver that just came back.
    """

    def __init__(self, initial_s: float, max_s: float) -> None:
        self.initial_s, self.max_s = initial_s, max_s
        self.failures = 0

    def next(self, retry_after_s: float | None = None) -> float:
        d = min(self.max_s, self.initial_s * 2.0 ** min(self.failures, 60))
        self.failures += 1
        if retry_after_s is not None:  # the receiver knows best
            return retry_after_s
        return random.uniform(d / 2, d)

    def reset(self) -> None:
        self.failures = 0


def _tls_error(e: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class Receiver:
    def __init__(self, fcfg: ForwardConfig, content_type: str) -> None:
        """Reads the secret files now: SecretFileError names the key and the path."""
        self.url = fcfg.url
        self.timeout_s = fcfg.timeout_s
        self._fcfg = fcfg
        self._gzip = fcfg.gzip
        self._secret = ""
        self._headers = {"Content-Type": content_type, "User-Agent": f"ebpf-producer/{__version__}"}
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self.reload_auth(strict=True)
        self._client = httpx.Client(
            verify=self._tls_context() if self.url.startswith("https:") else True,
            timeout=fcfg.timeout_s,
            # No proxy or .netrc from the environment: the config is the whole story.
            trust_env=False,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    def _tls_context(self) -> ssl.SSLContext:
        tls = self._fcfg.tls
        for key in ("ca_file", "cert_file", "key_file"):
            if getattr(tls, key):
                secretfiles.check_readable(f"forward.tls.{key}", getattr(tls, key))
        try:
            ctx = ssl.create_default_context(cafile=tls.ca_file or None)
        except ssl.SSLError as e:
            raise SecretFileError(
                f"forward.tls.ca_file: {tls.ca_file} holds no PEM certificate ({e})"
            ) from None
        if tls.cert_file:
            try:
                ctx.load_cert_chain(tls.cert_file, tls.key_file)
            except ssl.SSLError as e:
                raise SecretFileError(
                    f"forward.tls.cert_file: {tls.cert_file} and key_file {tls.key_file} are not a PEM "
                    f"certificate and its unencrypted key ({e.reason or e})"
                ) from None
        return ctx

    def reload_auth(self, *, strict: bool = False) -> None:
        """(Re-)read the secret file. strict: raise SecretFileError; else keep the old secret."""
        auth = self._fcfg.auth
        try:
            if auth.token_file:
                self._secret = secretfiles.read("forward.auth.token_file", auth.token_file)
                scheme = auth.token_scheme
                if scheme == "auto":
                    scheme = "Splunk" if self._fcfg.format == "splunk_hec" else "Bearer"
                self._headers["Authorization"] = f"{scheme} {self._secret}"
            elif auth.password_file:
                self._secret = secretfiles.read("forward.auth.password_file", auth.password_file)
                token = base64.b64encode(f"{auth.username}:{self._secret}".encode()).decode()
                self._headers["Authorization"] = f"Basic {token}"
        except SecretFileError:
            if strict:
                raise

    def post(self, body: bytes, timeout_s: float | None = None) -> Reply:
        data = gzip.compress(body, compresslevel=1) if self._gzip else body
        try:
            r = self._client.post(
                self.url,
                content=data,
                headers=self._headers,
                timeout=self._fcfg.timeout_s if timeout_s is None else max(0.1, timeout_s),
            )
        except httpx.TimeoutException as e:
            return Reply(None, error=f"no answer within the timeout ({type(e).__name__})")
        except httpx.HTTPError as e:
            tls = _tls_error(e)
            if tls is not None:
                if isinstance(tls, ssl.SSLCertVerificationError):
                    why = f"certificate verification failed: {tls.verify_message}"
                else:
                    why = str(tls.reason or tls)
                return Reply(None, error=f"TLS: {why}", tls_failure=True)
            return Reply(None, error=f"{type(e).__name__}: {e}")
        body_in = r.content
        if self._secret and self._secret.encode() in body_in:  # a receiver that echoes what it was sent
            body_in = body_in.replace(self._secret.encode(), b"***")
        return Reply(r.status_code, body_in, retry_after_s=parse_retry_after(r.headers.get("Retry-After")))

    def probe(self) -> Reply:
        """An empty POST: proves the address, the TLS and the credentials before anything is consumed.

        Raises what retrying cannot fix: credentials refused (401/403), no such endpoint (404/405),
        a certificate not trusted. Any other answer, 4xx included (Elastic's _bulk and Splunk's HEC
        answer 400 to an empty body, after checking the credentials), proves what it must.
        """
        reply = self.post(b"")
        if reply.tls_failure:
            raise ReceiverTlsError(
                f"forward: TLS with {self.url} failed ({reply.error}); check forward.tls.ca_file and the "
                "host name in forward.url"
            )
        if reply.auth_refused:
            raise ReceiverAuthError(
                f"forward: {self.url} refused the credentials ({reply.describe()[:120]}); check "
                f"{self._auth_keys()}"
            )
        if reply.status in (404, 405):
            raise ReceiverUrlError(
                f"forward: {self.url} has no such endpoint ({reply.describe()[:120]}); check the path "
                "in forward.url"
            )
        return reply

    def _auth_keys(self) -> str:
        auth = self._fcfg.auth
        if auth.token_file:
            return f"the token in forward.auth.token_file and forward.auth.token_scheme ({auth.token_scheme})"
        if auth.password_file:
            return "forward.auth.username and the password in forward.auth.password_file"
        return "forward.auth: the receiver wants credentials and none are configured"

    def close(self) -> None:
        self._client.close()
