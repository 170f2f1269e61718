"""Schema registration at start-up: every schema the run will write, under its topic's subject.

Only with schema_registry.url. Before any BPF is loaded: while the registry is unavailable nothing
is seen, so nothing goes uncounted. An unavailable registry is waited out with backoff (not ready
meanwhile, a stop signal ends the wait); a refusal (credentials, an incompatible schema) raises
RegistryError, which ends the run with one line.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from ..config import Config
from ..errors import RegistryUnavailableError
from ..kafka import registry
from ..records import codec
from .metrics import Health

log = structlog.get_logger("supervisor")

_BACKOFF_INITIAL_S = 1.0
_BACKOFF_MAX_S = 30.0


def register_schemas(
    cfg: Config,
    health: Health,
    *,
    wait: Callable[[float], None],
    stopping: Callable[[], bool],
) -> dict[str, int]:
    """Schema name -> registry id ({} without a registry, or when stopped while waiting).

    `wait(s)` sleeps up to s seconds and returns early on a stop signal; `stopping()` says whether
    one came.
    """
    rcfg = cfg.schema_registry
    if not rcfg.enabled:
        return {}
    reg = registry.Registry(rcfg)
    health.schemas_registered = False
    ids: dict[str, int] = {}
    backoff = _BACKOFF_INITIAL_S
    attempts = 0
    while not stopping():
        try:
            for name, subject in registry.subjects(cfg).items():
                if name not in ids:
                    ids[name] = reg.register(subject, codec.load_schema(name))
        except RegistryUnavailableError as e:
            attempts += 1
            log.warning("schema_registry_unavailable", error=str(e), attempts=attempts, retry_in_s=backoff)
            wait(backoff)
            backoff = min(_BACKOFF_MAX_S, backoff * 2)
            continue
        health.schemas_registered = True
        log.info("schemas_registered", url=reg.url, ids=ids)
        break
    return ids
