"""Is this host ready? Checked before any BPF is loaded, each failure one line with its fix.

`ebpf-producer check` prints every check; `ebpf-producer run` stops at the
first failure with a non-zero exit.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import resources
from ..config import Config
from ..errors import (
    BccMissingError,
    CriError,
    HeadersError,
    PreflightError,
    PrivilegeError,
    ProducerError,
    TracefsError,
)
from ..kafka import admin, secretfiles
from ..records import catalog, codec

CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39

TRACEFS_CANDIDATES = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))


@dataclass(frozen=True)
class Check:
    name: str
    detail: str
    warn: bool = False  # not a failure: the collector runs, with less than it could


def effective_caps(status: Path = Path("/proc/self/status")) -> int:
    for line in status.read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def check_privileges(caps: int | None = None) -> Check:
    caps = effective_caps() if caps is None else caps

    def has(bit: int) -> bool:
        return bool(caps >> bit & 1)

    if has(CAP_SYS_ADMIN) or (has(CAP_BPF) and has(CAP_PERFMON)):
        return Check("privileges", "CAP_BPF+CAP_PERFMON" if not has(CAP_SYS_ADMIN) else "CAP_SYS_ADMIN")
    raise PrivilegeError(
        "privileges: loading BPF needs root, or CAP_BPF and CAP_PERFMON (with CAP_SYS_RESOURCE "
        "on kernels before 5.11); run as root or grant them (helm: securityContext.capabilities)"
    )


def check_bcc() -> Check:
    try:
        import bcc
    except ImportError as e:
        raise BccMissingError(
            f"bcc: cannot import the bcc module ({e}); install Debian's python3-bpfcc and "
            "make the virtualenv with --system-site-packages (make setup)"
        ) from None
    return Check("bcc", getattr(bcc, "__version__", "") or os.path.dirname(bcc.__file__))


def find_tracefs(candidates: tuple[Path, ...] = TRACEFS_CANDIDATES) -> Path | None:
    for p in candidates:
        if (p / "events").is_dir():
            return p
    return None


def check_tracefs(cfg: Config, candidates: tuple[Path, ...] = TRACEFS_CANDIDATES) -> Check:
    root = find_tracefs(candidates)
    if root is None:
        raise TracefsError(
            f"tracefs: not mounted at {candidates[0]}; mount it with "
            f"'mount -t tracefs tracefs {candidates[0]}' (scripts/host-setup.sh does this; "
            "in Kubernetes mount the host's /sys/kernel/tracing)"
        )
    # the tracepoints the programs attach to: always (they track parents), and per enabled event type
    wanted = [*catalog.BASE_TRACEPOINTS, *(tp for e in catalog.enabled(cfg) for tp in e.tracepoints)]
    missing = sorted({tp for tp in wanted if not (root / "events" / tp).is_dir()})
    if missing:
        raise TracefsError(
            f"tracefs: tracepoints missing under {root}/events: {', '.join(missing)}; this kernel "
            "lacks them (CONFIG_FTRACE_SYSCALLS?) - disable the event types that need them"
        )
    return Check("tracefs", str(root))


def check_headers(
    release: str | None = None,
    modules: Path = Path("/lib/modules"),
    kheaders: Path = Path("/sys/kernel/kheaders.tar.xz"),
) -> Check:
    if os.environ.get("BCC_KERNEL_SOURCE"):
        return Check("kernel headers", f"BCC_KERNEL_SOURCE={os.environ['BCC_KERNEL_SOURCE']}")
    release = release or os.uname().release
    build = modules / release / "build"
    if (build / "include").is_dir():
        return Check("kernel headers", f"{build} -> {build.resolve()}")
    if kheaders.exists():
        return Check("kernel headers", str(kheaders))
    raise HeadersError(
        f"kernel headers: {build} is missing; BCC needs headers to compile: install "
        "linux-headers-amd64 and link it there (scripts/host-setup.sh), or set BCC_KERNEL_SOURCE"
    )


def check_readers(cfg: Config) -> Check:
    """readers.cpu_groups against the CPUs actually online (the config alone cannot know them)."""
    from ..kernel.cpus import cpu_groups, online_cpus

    groups = cpu_groups(cfg, online_cpus())
    return Check("readers", f"{len(groups)}: " + " ".join(",".join(map(str, g)) for g in groups))


def check_data_plane(cfg: Config) -> Check:
    """Which data plane the readers will run; `native` required and unable to run is a failure."""
    from .. import native

    choice = native.select(cfg)
    detail = choice.active + (f" ({choice.reason})" if choice.reason else "")
    return Check("data plane", detail + (f", librdkafka {choice.library}" if choice.library else ""))


def check_package_data() -> Check:
    """The BPF sources travel inside the package (or image): missing ones are an incomplete install."""
    return Check("package data", str(resources.require("bpf", resources.BPF_FILES)))


def check_schemas(cfg: Config) -> Check:
    """Every schema the run will encode with, loaded now rather than after the BPF is attached."""
    names = [*(e.schema for e in catalog.enabled(cfg)), "drop_report"]
    if cfg.k8s.enabled:
        names.append("containers")
    d = resources.require("schemas", [f"{n}.avsc" for n in names])
    for name in names:
        codec.load_schema(name)
    return Check("schemas", f"{d}: {', '.join(names)}")


def check_credentials(cfg: Config) -> Check:
    """Every file kafka.security and schema_registry name, readable now (their content is never shown)."""
    keys = secretfiles.check_all(cfg)
    return Check("credentials", ", ".join(keys) if keys else "none configured")


def check_kafka(cfg: Config) -> Check:
    brokers = admin.check_broker(cfg.kafka)
    detail = f"{cfg.kafka.bootstrap_servers} ({brokers} broker{'s' if brokers != 1 else ''})"
    if cfg.kafka.create_topics:
        topics = [cfg.kafka.topic(e.name) for e in catalog.enabled(cfg)] + [cfg.kafka.drops_topic]
        compacted = [cfg.kafka.topic(e.name) for e in catalog.enabled(cfg) if e.compacted]
        if cfg.k8s.enabled:  # the latest record of each container is what a consumer joins with
            topics.append(cfg.kafka.containers_topic)
            compacted.append(cfg.kafka.containers_topic)
        created = admin.ensure_topics(cfg.kafka, topics, compacted=compacted)
        if created:
            detail += f", created {', '.join(created)}"
    return Check("kafka", detail)


def checks(cfg: Config) -> Iterator[tuple[str, Callable[[], Check]]]:
    yield "privileges", check_privileges
    yield "bcc", check_bcc
    yield "tracefs", lambda: check_tracefs(cfg)
    yield "kernel headers", check_headers
    yield "package data", check_package_data
    yield "schemas", lambda: check_schemas(cfg)
    yield "readers", lambda: check_readers(cfg)
    yield "data plane", lambda: check_data_plane(cfg)
    yield "credentials", lambda: check_credentials(cfg)
    yield "kafka", lambda: check_kafka(cfg)


def check_k8s(cfg: Config) -> Check:
    """The CRI runtime socket: which one answers, or which were tried and what to mount.

    Only `check` asks the runtime: `run` must not open a gRPC channel in the process that forks the
    readers (producer/k8s/watch.py says why); its readers and watcher log the same warning instead.
    """
    if not cfg.k8s.enabled:
        return Check("k8s", "disabled (k8s.enabled: false): events carry k8s null")
    from ..k8s.cri import DEFAULT_SOCKETS
    from ..k8s.resolver import connect

    try:
        with connect(cfg.k8s) as client:
            v = client.version()
    except CriError as e:
        tried = cfg.k8s.runtime_socket or ", ".join(DEFAULT_SOCKETS)
        return Check(
            "k8s",
            f"no CRI runtime answered (tried {tried}): {e}; mount the node's runtime socket read-only "
            "(helm: criSocket) or set k8s.runtime_socket. The collector runs without it: k8s stays "
            "null and pod containers' records count as k8s_unresolved",
            warn=True,
        )
    return Check(
        "k8s", f"{v.runtime_name} {v.runtime_version} (CRI {v.runtime_api_version}) at {client.socket}"
    )


def run_all(cfg: Config) -> list[Check]:
    """Every check in order; raises the first failure."""
    return [fn() for _, fn in checks(cfg)]


def report(cfg: Config) -> tuple[list[str], bool]:
    """Every check, failures included, as printable lines."""
    lines, ok = [], True
    for name, fn in [*checks(cfg), ("k8s", lambda: check_k8s(cfg))]:
        try:
            c = fn()
            lines.append(f"{'WARN' if c.warn else 'ok':<6}{c.name}: {c.detail}")
        except ProducerError as e:
            ok = False
            lines.append(f"FAIL  {name}: {e}")
    return lines, ok


__all__ = [
    "Check",
    "PreflightError",
    "check_headers",
    "check_kafka",
    "check_privileges",
    "check_tracefs",
    "report",
    "run_all",
]
