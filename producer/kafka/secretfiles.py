"""The files behind kafka.security and schema_registry: read at the moment of use, never logged.

Secrets live in files only (in Kubernetes, a mounted Secret), so the config
file itself carries nothing worth stealing and a rotated Secret is picked up
by the next client that is built (a restarted reader, the next start).
Every error names the config key and the path, never the content.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..errors import SecretFileError


def read(key: str, path: str) -> str:
    """The secret in `path`, without the trailing newline an editor or `echo` leaves."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise SecretFileError(f"{key}: cannot read {path} ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise SecretFileError(f"{key}: {path} is not UTF-8 text") from None
    secret = text.rstrip("\r\n")
    if not secret:
        raise SecretFileError(f"{key}: {path} is empty")
    return secret


def check_readable(key: str, path: str) -> None:
    """Certificates and keys are read by librdkafka or ssl itself; this only makes their failure ours."""
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        raise SecretFileError(f"{key}: cannot read {path} ({e.strerror or e})") from None


def check_all(cfg: Config) -> list[str]:
    """Every file the config names, checked; returns their keys. Raises SecretFileError."""
    keys = []
    for key, path in [*cfg.kafka.security.files(), *cfg.schema_registry.files()]:
        if key.endswith("password_file"):
            read(key, path)
        else:
            check_readable(key, path)
        keys.append(key)
    return keys
