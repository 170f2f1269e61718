"""Render the chart with the real helm binary and pick manifests apart.

helm comes from scripts/install-helm.sh (the Makefile's `tools` target); a test
never falls back to anything else, so a missing helm is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support import ROOT

CHART = ROOT / "helm/ebpf-kafka-producer"
CI_VALUES = CHART / "ci"
RELEASE, NAMESPACE = "ekp", "observability"


def helm_binary() -> str:
    default = Path.home() / ".cache/ebpf-kafka-producer/bin/helm"
    for candidate in (os.environ.get("HELM"), str(default), shutil.which("helm")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise AssertionError("helm not found: run scripts/install-helm.sh (make tools)")


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=120, check=False)


def _value_args(values: list[Path] | None, sets: dict[str, str] | None) -> list[str]:
    args: list[str] = []
    for v in values or []:
        args += ["-f", str(v)]
    for key, value in (sets or {}).items():
        args += ["--set", f"{key}={value}"]
    return args


@dataclass
class Rendered:
    docs: list[dict[str, Any]]
    text: str

    def kinds(self) -> list[str]:
        return sorted(d["kind"] for d in self.docs)

    def one(self, kind: str, component: str | None = None) -> dict[str, Any]:
        """The one object of this kind: the collector's, or with component="forwarder" the forwarder's."""
        found = [
            d
            for d in self.docs
            if d["kind"] == kind and d["metadata"]["labels"].get("app.kubernetes.io/component") == component
        ] or [d for d in self.docs if d["kind"] == kind and component is None]
        assert len(found) == 1, f"expected one {kind}, got {len(found)}"
        return found[0]

    @property
    def pod(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.one("DaemonSet")["spec"]["template"]["spec"]
        return spec

    @property
    def container(self) -> dict[str, Any]:
        (c,) = self.pod["containers"]
        return dict(c)

    def collector_config(self) -> dict[str, Any]:
        data: dict[str, Any] = yaml.safe_load(self.one("ConfigMap")["data"]["config.yaml"]) or {}
        return data

    def mounts(self) -> dict[str, dict[str, Any]]:
        """volume name -> {volume, mount}"""
        vols = {v["name"]: v for v in self.pod["volumes"]}
        return {m["name"]: {"volume": vols[m["name"]], "mount": m} for m in self.container["volumeMounts"]}


def render(
    values: list[Path] | None = None,
    sets: dict[str, str] | None = None,
    *,
    kube_version: str | None = None,
) -> Rendered:
    args = ["template", RELEASE, str(CHART), "-n", NAMESPACE, *_value_args(values, sets)]
    if kube_version:
        args += ["--kube-version", kube_version]
    p = helm(*args)
    assert p.returncode == 0, p.stderr
    docs = [d for d in yaml.safe_load_all(p.stdout) if d]
    return Rendered(docs, p.stdout)


def render_error(values: list[Path] | None = None, sets: dict[str, str] | None = None) -> str:
    """helm's output for values that must not render; fails if they do."""
    p = helm("template", RELEASE, str(CHART), "-n", NAMESPACE, *_value_args(values, sets))
    assert p.returncode != 0, f"rendered although it must not:\n{p.stdout[:2000]}"
    assert not p.stdout.strip(), "a failed render still printed manifests"
    return p.stderr
