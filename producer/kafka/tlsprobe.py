"""Why did a broker's certificate fail verification: its chain, or the host name in it?

OpenSSL (and so librdkafka) reports both as "certificate verify failed". One
more handshake with Python's ssl, chain checked but name not, tells them
apart, so the error can say which file or which name to fix. Used only on
the failure path of the preflight check.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

from ..config import SecurityConfig


def diagnose(address: str, sec: SecurityConfig, timeout_s: float = 5.0) -> str:
    """A hint naming what to fix; "" when the probe cannot tell."""
    host, _, port = address.strip().rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        return ""
    ctx = ssl.create_default_context(cafile=sec.ca_file or None)
    ctx.check_hostname = False  # the chain alone, first
    try:
        with (
            socket.create_connection((host, int(port)), timeout=timeout_s) as raw,
            ctx.wrap_socket(raw, server_hostname=host) as tls,
        ):
            cert = tls.getpeercert()
    except ssl.SSLCertVerificationError as e:
        where = (
            "kafka.security.ca_file"
            if sec.ca_file
            else "the system's CA bundle (kafka.security.ca_file is unset)"
        )
        return (
            f"certificate verification failed: the broker's certificate chain is not trusted by {where} "
            f"({e.verify_message})"
        )
    except (OSError, ssl.SSLError):
        return ""
    names = _names(cert)
    if names and not _matches(host, names):
        return (
            f"certificate hostname verification failed: the broker's certificate is for {', '.join(names)}, "
            f"not {host} (fix kafka.bootstrap_servers or the certificate's names)"
        )
    return ""


def _names(cert: Any) -> list[str]:
    san = (cert or {}).get("subjectAltName") or ()
    return [str(v) for k, v in san if k in ("DNS", "IP Address")]


def _matches(host: str, names: list[str]) -> bool:
    h = host.lower().rstrip(".")
    for n in (x.lower().rstrip(".") for x in names):
        if n == h or (n.startswith("*.") and "." in h and h.split(".", 1)[1] == n[2:]):
            return True
    return False
