"""What the image recipe must hold, read from the Dockerfile; tests/image builds and runs it for real.

These catch in a second what the build would catch in minutes, and what a build on this machine
cannot: that the default base still comes from Docker Hub for everyone else.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field

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


@dataclass
class Stage:
    base: str
    name: str
    steps: list[tuple[str, str]] = field(default_factory=list)

    def args_of(self, op: str) -> list[str]:
        return [a for o, a in self.steps if o == op]


def stages() -> list[Stage]:
    out: list[Stage] = []
    for op, args in instructions():
        if op == "FROM":
            base, _, name = args.partition(" AS ")
            out.append(Stage(base.strip(), name.strip()))
        elif out:
            out[-1].steps.append((op, args))
    return out


def final() -> Stage:
    return stages()[-1]


def entrypoint() -> list[str]:
    (ep,) = final().args_of("ENTRYPOINT")
    parsed: list[str] = json.loads(ep)  # exec form: signals reach the collector, not a shell
    return parsed


def env(stage: Stage) -> dict[str, str]:
    out: dict[str, str] = {}
    for a in stage.args_of("ENV"):
        out.update(dict(kv.split("=", 1) for kv in shlex.split(a)))
    return out


def test_the_base_is_an_argument_defaulting_to_debian_12_pinned_to_a_point_release() -> None:
    (arg,) = [a for o, a in instructions() if o == "ARG"]
    name, _, default = arg.partition("=")
    assert name == "BASE_IMAGE"
    assert re.fullmatch(r"debian:12\.\d+(-slim)?", default), default
    names = {s.name for s in stages() if s.name}
    for s in stages():  # every stage starts from the argument or from an earlier stage
        assert s.base == "${BASE_IMAGE}" or s.base in names, s.base


def test_bcc_comes_from_debian_and_the_venv_sees_it() -> None:
    runs = " ".join(a for s in stages() for a in s.args_of("RUN"))
    assert re.search(r"apt-get install [^&]*\bpython3-bpfcc\b", runs)
    assert "python3 -m venv --system-site-packages /opt/venv" in runs
    assert env(final())["PATH"].startswith("/opt/venv/bin:")


def test_the_image_installs_the_wheel_and_holds_no_source_tree() -> None:
    by_name = {s.name: s for s in stages()}
    wheel = by_name["wheel"]
    assert any("pip wheel" in a and "--wheel-dir /dist" in a for a in wheel.args_of("RUN"))
    img = final()
    # Only the wheel, by COPY --from: buildah keeps a cached RUN --mount=from= layer when that stage changed.
    assert img.args_of("COPY") == ["--from=wheel /dist/ /dist/"]
    assert not any("from=" in a for a in img.args_of("RUN"))
    (install,) = [a for a in img.args_of("RUN") if "pip install" in a]
    assert "/dist/*.whl" in install and "rm -rf /dist" in install
    assert not any(k.startswith("EKP_") for k in env(img)), "package data needs no EKP_*_DIR variables"


def test_the_build_runs_the_installed_collector() -> None:
    runs = " ".join(final().args_of("RUN"))
    assert "ebpf-producer --version" in runs
    assert 'python -c "import bcc, producer"' in runs


def test_entrypoint_runs_the_collector_on_the_charts_config() -> None:
    assert entrypoint() == ["ebpf-producer", "run", "--config", "/etc/ebpf-kafka-producer/config.yaml"]


def test_build_context_holds_what_the_wheel_is_made_of_and_nothing_else() -> None:
    lines = [ln for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "*"  # deny by default: a local .venv or caches never enter the image
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    copies = [a.split() for s in stages() for a in s.args_of("COPY") if not a.startswith("--from=")]
    sources = {w.rstrip("/") for words in copies for w in words[:-1]}
    assert sources <= allowed, sources - allowed
    # Every directory the wheel's packages come from (pyproject's package-dir) is copied in.
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_dirs = {d.split("/")[0] for d in setuptools.get("package-dir", {}).values()} | {"producer"}
    assert package_dirs <= sources, package_dirs - sources
    for src in sources:
        assert (ROOT / src).exists(), src
