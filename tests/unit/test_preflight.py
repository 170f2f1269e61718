"""Preflight checks on fake host trees: each failure names the fix in one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from producer import config
from producer.errors import HeadersError, PrivilegeError, TracefsError
from producer.ops import preflight
from producer.records import catalog

CFG = config.validate({})


def test_privileges() -> None:
    assert preflight.check_privileges(1 << preflight.CAP_SYS_ADMIN).detail == "CAP_SYS_ADMIN"
    both = (1 << preflight.CAP_BPF) | (1 << preflight.CAP_PERFMON)
    assert preflight.check_privileges(both).detail == "CAP_BPF+CAP_PERFMON"
    with pytest.raises(PrivilegeError, match="needs root, or CAP_BPF and CAP_PERFMON"):
        preflight.check_privileges(1 << preflight.CAP_BPF)
    with pytest.raises(PrivilegeError):
        preflight.check_privileges(0)


def test_tracefs(tmp_path: Path) -> None:
    root = tmp_path / "tracing"
    with pytest.raises(
        TracefsError, match=re.escape(f"not mounted at {root}; mount it with 'mount -t tracefs")
    ):
        preflight.check_tracefs(CFG, (root,))
    wanted = set(catalog.BASE_TRACEPOINTS) | {
        tp for t in CFG.events.enabled_types() for tp in catalog.TRACEPOINTS[t]
    }
    for tp in wanted - {"sched/sched_process_exit"}:
        (root / "events" / tp).mkdir(parents=True)
    with pytest.raises(TracefsError, match=r"missing .*: sched/sched_process_exit;"):
        preflight.check_tracefs(CFG, (root,))
    (root / "events" / "sched/sched_process_exit").mkdir(parents=True)
    assert preflight.check_tracefs(CFG, (root,)).detail == str(root)


def test_headers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BCC_KERNEL_SOURCE", raising=False)
    none = tmp_path / "kheaders.tar.xz"
    with pytest.raises(HeadersError, match=r"build is missing.*scripts/host-setup\.sh"):
        preflight.check_headers("6.9.9-x", tmp_path, none)
    (tmp_path / "6.9.9-x" / "build" / "include").mkdir(parents=True)
    assert "build" in preflight.check_headers("6.9.9-x", tmp_path, none).detail
    monkeypatch.setenv("BCC_KERNEL_SOURCE", "/src")
    assert preflight.check_headers("other", tmp_path, none).detail == "BCC_KERNEL_SOURCE=/src"
