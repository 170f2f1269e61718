"""Bad config, missing privileges, an unreachable broker: one line, non-zero exit, no BPF loaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.collector import one_error_line, run_cli
from tests.support.kafka import Broker


def test_bad_config_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("readers:\n  perf_pagez: 8\n")
    p = run_cli(["run", "--config", str(cfg)])
    assert p.returncode == 2
    assert one_error_line(p) == (
        "ebpf-producer: config: readers.perf_pagez: unknown key (did you mean "
        "readers.perf_pages?); known keys here: count, cpu_groups, data_plane, max_auto, "
        "max_latency_ms, perf_pages, pin, restart_backoff_initial_s, "
        "restart_backoff_max_s, wakeup_events"
    )


@pytest.mark.broker
def test_unreachable_broker(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kafka:\n  bootstrap_servers: 127.0.0.1:1\n")
    p = run_cli(["run", "--config", str(cfg)])
    assert p.returncode == 4
    line = one_error_line(p)
    assert line.startswith("ebpf-producer: kafka: no broker answered at 127.0.0.1:1 within 10 s")
    assert "make kafka-up" in line


def test_librdkafka_rejects_a_client_setting(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kafka:\n  client:\n    no.such.property: 1\n")
    p = run_cli(["run", "--config", str(cfg)])
    assert p.returncode == 4
    line = one_error_line(p)
    assert "kafka.client: librdkafka rejected the configuration" in line
    assert "No such configuration property" in line


@pytest.mark.kernel
def test_missing_privileges(tmp_path: Path) -> None:
    # root without capabilities: what a container gets without CAP_BPF/CAP_PERFMON
    drop = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--"]
    p = run_cli(["run"], prefix=drop)
    assert p.returncode == 3
    assert one_error_line(p).startswith(
        "ebpf-producer: privileges: loading BPF needs root, or CAP_BPF and CAP_PERFMON"
    )


def test_check_lists_every_check(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kafka:\n  bootstrap_servers: 127.0.0.1:1\n")
    p = run_cli(["check", "--config", str(cfg)])
    names = [ln.split(":")[0].split()[-1] for ln in p.stdout.splitlines()]
    assert names == [
        "privileges",
        "bcc",
        "tracefs",
        "headers",
        "data",  # package data
        "schemas",
        "readers",
        "plane",  # data plane: which one the readers will run, and why
        "credentials",
        "kafka",
        "k8s",  # a warning at most: no CRI socket on the usual paths here
    ], p.stdout
    assert p.returncode == 3
    assert "FAIL  kafka: kafka: no broker answered" in p.stdout
    assert p.stdout.splitlines()[-1].startswith(("WARN  k8s: no CRI runtime answered", "ok    k8s: "))


def test_missing_schemas_stop_the_run_before_bpf(tmp_path: Path) -> None:
    env = {**os.environ, "EKP_SCHEMAS_DIR": str(tmp_path)}
    p = run_cli(["run"], env=env)
    assert p.returncode == 6
    line = one_error_line(p)
    assert line.startswith("ebpf-producer: package data: process_exec.avsc"), line
    assert f"missing in {tmp_path} (from $EKP_SCHEMAS_DIR" in line, line


@pytest.mark.kernel
@pytest.mark.broker
def test_a_bpf_compile_error_is_one_line_after_the_compiler_output(tmp_path: Path, broker: Broker) -> None:
    for f in (ROOT / "bpf").iterdir():
        (tmp_path / f.name).write_text(f.read_text())
    src = tmp_path / "collector.bpf.c"
    text = src.read_text()
    assert "e->child_pid = child;" in text
    src.write_text(text.replace("e->child_pid = child;", "e->child_pid = child"))  # a syntax error
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"kafka:\n  bootstrap_servers: {broker.bootstrap}\nmetrics:\n  listen: ''\n")
    env = {**os.environ, "EKP_BPF_DIR": str(tmp_path)}
    p = run_cli(["run", "--config", str(cfg)], timeout=120, env=env)
    assert p.returncode == 5
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ebpf-producer: bpf: compiling {src} failed"), p.stderr
    assert "expected ';'" in p.stderr  # clang's own message is shown above it
    assert "Traceback" not in p.stderr


@pytest.mark.kernel
def test_cpu_groups_naming_an_offline_cpu(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("readers:\n  cpu_groups: [[0], [4095]]\n")
    p = run_cli(["run", "--config", str(cfg)])
    assert p.returncode == 2
    assert one_error_line(p).startswith(
        "ebpf-producer: config: readers.cpu_groups: CPUs [4095] are not online"
    )
