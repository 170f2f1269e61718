"""The machine a benchmark ran on, and the tools it needs there."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from producer.errors import PreflightError
from tests.support import ROOT

TOOLS = ("bpftrace", "kcat", "gcc")


def ensure_tools() -> None:
    """Install the peer pipeline's tools and a C compiler when missing (scripts/bench-setup.sh)."""
    if os.geteuid() != 0:
        raise PreflightError("bench: must run as root (it loads BPF programs and installs packages)")
    if all(shutil.which(t) for t in TOOLS):
        return
    subprocess.run(["bash", str(ROOT / "scripts" / "bench-setup.sh")], check=True)
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        raise PreflightError(f"bench: {', '.join(missing)} still missing after scripts/bench-setup.sh")


def _output(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (out.stdout or out.stderr).strip()


def _first_line(cmd: list[str]) -> str:
    text = _output(cmd)
    return text.splitlines()[0] if text else "?"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _mem_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def _os_name() -> str:
    try:
        m = re.search(r'^PRETTY_NAME="?([^"\n]*)', Path("/etc/os-release").read_text(), re.M)
    except OSError:
        return "?"
    return m[1] if m else "?"


def _git() -> str:
    head = _first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    branch = _first_line(["git", "-C", str(ROOT), "rev-parse", "--abbrev-ref", "HEAD"])
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"{head} ({branch}){' + uncommitted changes' if dirty else ''}"


def _kafka_version() -> str:
    pom = (ROOT / "scripts" / "kafka" / "pom.xml").read_text()
    m = re.search(r"<kafka.version>(.*?)</kafka.version>", pom)
    return m[1] if m else "?"


def machine() -> dict[str, Any]:
    from confluent_kafka import libversion

    kcat = re.search(r"Version (\S+) .*librdkafka (\S+)", _output(["kcat", "-V"]))
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_gib": round(_mem_gib(), 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "librdkafka": libversion()[0],
        "kafka_broker": _kafka_version(),
        "bpftrace": _first_line(["bpftrace", "--version"]),
        "kcat": f"{kcat[1]} (librdkafka {kcat[2]})" if kcat else "?",
        "code": _git(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def describe(m: dict[str, Any]) -> str:
    return (
        f"{m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, {m['os']}, kernel {m['kernel']}; "
        f"Python {m['python']}, librdkafka {m['librdkafka']}, Apache Kafka {m['kafka_broker']} "
        f"(local, 1 broker), {m['bpftrace']}, kcat {m['kcat']}; load average at start "
        f"{' '.join(m['loadavg_at_start'])}"
    )
