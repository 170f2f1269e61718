"""scripts/install-helm.sh builds only when the pinned helm is missing (a build takes minutes)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.helm.chart import ROOT

SCRIPT = ROOT / "scripts/install-helm.sh"


def run(bin_dir: Path) -> subprocess.CompletedProcess[str]:
    # No go on PATH: any attempt to build shows up as the script's "go is not installed".
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "EKP_TOOLS_BIN": str(bin_dir)}
    return subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def fake_helm(bin_dir: Path, version: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    helm = bin_dir / "helm"
    helm.write_text(f"#!/bin/sh\nprintf '%s' '{version}'\n")
    helm.chmod(0o755)


def test_the_pinned_version_present_means_nothing_to_do(tmp_path: Path) -> None:
    fake_helm(tmp_path, "v3.22.0")
    p = run(tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""


def test_another_version_or_none_is_rebuilt(tmp_path: Path) -> None:
    fake_helm(tmp_path / "old", "v3.14.0")
    for bin_dir in (tmp_path / "old", tmp_path / "empty"):
        p = run(bin_dir)
        assert p.returncode == 1
        assert "go is not installed; helm is built from source with it" in p.stderr
