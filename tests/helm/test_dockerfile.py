"""The image recipe cannot be built here (no container engine): check what it must hold."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from tests.helm.chart import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def args_of(op: str) -> list[str]:
    return [a for o, a in instructions() if o == op]


def entrypoint() -> list[str]:
    (ep,) = args_of("ENTRYPOINT")
    parsed: list[str] = json.loads(ep)  # exec form: signals reach the collector, not a shell
    return parsed


def env() -> dict[str, str]:
    out: dict[str, str] = {}
    for a in args_of("ENV"):
        out.update(dict(kv.split("=", 1) for kv in shlex.split(a)))
    return out


def test_base_is_debian_12_pinned_to_a_point_release() -> None:
    (base,) = args_of("FROM")
    assert re.fullmatch(r"debian:12\.\d+(-slim)?", base), base


def test_bcc_comes_from_debian_and_the_venv_sees_it() -> None:
    runs = " ".join(args_of("RUN"))
    assert re.search(r"apt-get install [^&]*\bpython3-bpfcc\b", runs)
    assert "python3 -m venv --system-site-packages /opt/venv" in runs
    assert "/opt/venv/bin/pip install --no-cache-dir ." in runs
    assert env()["PATH"].startswith("/opt/venv/bin:")


def test_bpf_and_schemas_are_copied_where_the_variables_point() -> None:
    workdir = Path(args_of("WORKDIR")[-1])
    copies = {Path(a.split()[0]): workdir / a.split()[1] for a in args_of("COPY")}
    e = env()
    assert Path(e["EKP_BPF_DIR"]) == copies[Path("bpf")]
    assert Path(e["EKP_SCHEMAS_DIR"]) == copies[Path("schemas")]
    for src in copies:
        assert (ROOT / src).exists(), src


def test_entrypoint_runs_the_collector_on_the_charts_config() -> None:
    assert entrypoint() == ["ebpf-producer", "run", "--config", "/etc/ebpf-kafka-producer/config.yaml"]


def test_build_context_holds_only_what_copy_needs() -> None:
    lines = [ln for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "*"  # deny by default: a local .venv or caches never enter the image
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    sources = {w.rstrip("/") for a in args_of("COPY") for w in a.split()[:-1]}
    assert sources <= allowed, sources - allowed
