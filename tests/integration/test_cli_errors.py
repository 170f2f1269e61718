"""Bad config, missing privileges, an unreachable broker: one line, non-zero exit, no BPF loaded."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import CLI, ROOT


def run(
    args: list[str], *, prefix: list[str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(prefix or []), *CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False
    )


def one_error_line(p: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert "bpf_compiled" not in p.stderr and "Traceback" not in p.stderr
    return lines[0]


def test_bad_config_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("readers:\n  perf_pagez: 8\n")
    p = run(["run", "--config", str(cfg)])
    assert p.returncode == 2
    assert one_error_line(p) == (
        "ebpf-producer: config: readers.perf_pagez: unknown key (did you mean "
        "readers.perf_pages?); known keys here: count, cpu_groups, max_auto, "
        "max_latency_ms, perf_pages, pin, restart_backoff_initial_s, "
        "restart_backoff_max_s, wakeup_events"
    )


@pytest.mark.broker
def test_unreachable_broker(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kafka:\n  bootstrap_servers: 127.0.0.1:1\n")
    p = run(["run", "--config", str(cfg)])
    assert p.returncode == 4
    line = one_error_line(p)
    assert line.startswith("ebpf-producer: kafka: no broker answered at 127.0.0.1:1 within 10 s")
    assert "make kafka-up" in line


def test_librdkafka_rejects_a_client_setting(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kafka:\n  client:\n    no.such.property: 1\n")
    p = run(["run", "--config", str(cfg)])
    assert p.returncode == 4
    line = one_error_line(p)
    assert "kafka.client: librdkafka rejected the configuration" in line
    assert "No such configuration property" in line


@pytest.mark.kernel
def test_missing_privileges(tmp_path: Path) -> None:
    # root without capabilities: what a container gets without CAP_BPF/CAP_PERFMON
    drop = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--"]
    p = run(["run"], prefix=drop)
    assert p.returncode == 3
    assert one_error_line(p).startswith(
        "ebpf-producer: privileges: loading BPF needs root, or CAP_BPF and CAP_PERFMON"
    )


def test_check_lists_every_check(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kafka:\n  bootstrap_servers: 127.0.0.1:1\n")
    p = run(["check", "--config", str(cfg)])
    names = [ln.split(":")[0].split()[-1] for ln in p.stdout.splitlines()]
    assert names == ["privileges", "bcc", "tracefs", "headers", "kafka"], p.stdout
    assert p.returncode == 3
    assert "FAIL  kafka: kafka: no broker answered" in p.stdout
