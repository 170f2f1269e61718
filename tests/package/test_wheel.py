"""The wheel is the product: built, installed non-editable into a fresh virtualenv, and run from there.

Every other test imports `producer` from the checkout. A console script that imports a module the wheel
leaves out (it happened: `producer.bench`), or BPF sources and schemas found only through the source tree,
pass all of those and fail in every real install. Here nothing of the checkout is on the path: the
collector runs from the venv, in a directory of its own, and must find its package data inside itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from producer import __version__
from tests.support import ROOT
from tests.support.collector import CollectorRunner
from tests.support.kafka import Broker, consume
from tests.support.ledger import assert_identity, final_report

pytestmark = [pytest.mark.kernel, pytest.mark.broker, pytest.mark.slow]


@dataclass(frozen=True)
class Installed:
    venv: Path
    wheel: Path

    @property
    def cli(self) -> Path:
        return self.venv / "bin" / "ebpf-producer"

    def site_package(self) -> Path:
        out = subprocess.run(
            [str(self.venv / "bin" / "python"), "-c", "import producer; print(producer.__file__)"],
            capture_output=True,
            text=True,
            check=True,
            cwd=self.venv,
            env=clean_env(),
        ).stdout.strip()
        return Path(out).parent


def clean_env() -> dict[str, str]:
    """The test's environment minus anything that could lead the installed collector back to the checkout."""
    drop = ("PYTHONPATH", "EKP_BPF_DIR", "EKP_SCHEMAS_DIR", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if k not in drop}


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    d = tmp_path_factory.mktemp("wheel")
    # the checkout's venv has pip; the wheel's build runs in an isolated environment of its own
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(d / "dist"), str(ROOT)],
        check=True,
    )
    (wheel,) = (d / "dist").glob("ebpf_kafka_producer-*.whl")
    venv = d / "venv"
    # Debian's python, as the Dockerfile and README say: BCC comes from its python3-bpfcc.
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True, env=clean_env())
    yield Installed(venv, wheel)


def run_cli(inst: Installed, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(inst.cli), *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env(),
        timeout=120,
    )


def run_python(inst: Installed, code: str, cwd: Path) -> list[str]:
    """The install's python running `code` outside the checkout; its output's words."""
    return subprocess.run(
        [str(inst.venv / "bin" / "python"), "-c", code],
        check=True,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env(),
    ).stdout.split()


def test_the_wheel_carries_its_bpf_sources_and_schemas_and_no_benchmark(installed: Installed) -> None:
    import zipfile

    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for f in ("collector.bpf.c", "events.h", "ledger.bpf.h", "records.bpf.h"):
        assert f"producer/bpf/{f}" in names
    for f in (ROOT / "schemas").rglob("*.avsc"):
        assert f"producer/schemas/{f.relative_to(ROOT / 'schemas')}" in names
    assert not [n for n in names if n.startswith(("bench/", "tests/", "producer/bench"))]
    # every module of the checkout (a package left out of pyproject's list would be missing here)
    checkout = {
        str(p.relative_to(ROOT)) for p in (ROOT / "producer").rglob("*.py") if "cri_v1" not in p.parts
    }
    assert checkout <= names, sorted(checkout - names)
    # the CRI v1 stubs are generated while the wheel is built (setup.py); the definition ships beside them
    stubs = {
        f"producer/k8s/cri_v1/{f}" for f in ("__init__.py", "api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py")
    }
    assert stubs <= names and "producer/k8s/proto/api.proto" in names
    site = installed.site_package()
    assert site.is_relative_to(installed.venv), site
    assert (site / "bpf" / "collector.bpf.c").is_file()


def test_the_wheel_carries_the_native_data_plane_compiled(installed: Installed, tmp_path: Path) -> None:
    import zipfile

    names = set(zipfile.ZipFile(installed.wheel).namelist())
    assert [n for n in names if n.startswith("producer/native/_dataplane.") and n.endswith(".so")], names
    assert "producer/native/_dataplane.pyi" in names
    assert not [n for n in names if n.startswith("producer/native/src/")]  # built, not shipped as source
    probe = "from producer import native; print(native.__file__); print(native.probe())"
    out = run_python(installed, probe, tmp_path)
    assert Path(out[0]).is_relative_to(installed.venv), out
    assert "librdkafka" in Path(out[1]).name and Path(out[1]).is_relative_to(installed.venv), out


def test_the_installed_cri_stubs_speak_the_cri_wire_format(installed: Installed, tmp_path: Path) -> None:
    probe = (
        "import producer.k8s.cri as cri, producer.k8s.cri_v1.api_pb2 as pb;"
        "print(cri.__file__); print(pb.DESCRIPTOR.name);"
        "print(pb.ContainerStatusRequest(container_id='x', verbose=True).SerializeToString().hex())"
    )
    out = run_python(installed, probe, tmp_path)
    assert Path(out[0]).is_relative_to(installed.venv), out
    assert out[1] == "producer/k8s/cri_v1/api.proto"
    assert out[2] == "0a01781001"  # field 1 "x", field 2 true


def test_version_and_help_work_from_the_install(installed: Installed, tmp_path: Path) -> None:
    v = run_cli(installed, "--version", cwd=tmp_path)
    assert v.returncode == 0 and v.stdout.strip() == f"ebpf-producer {__version__}", v
    h = run_cli(installed, "--help", cwd=tmp_path)
    assert h.returncode == 0 and "run" in h.stdout and "bench" not in h.stdout, h


def test_check_then_run_from_the_install(
    installed: Installed, broker: Broker, prefix: str, tmp_path: Path
) -> None:
    runner = CollectorRunner(broker, prefix, tmp_path, command=[str(installed.cli)], cwd=tmp_path)
    cfg = runner.write_config()
    chk = run_cli(installed, "check", "--config", str(cfg), cwd=tmp_path)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    assert f"ok    package data: {installed.site_package() / 'bpf'}" in chk.stdout, chk.stdout
    assert f"ok    schemas: {installed.site_package() / 'schemas'}" in chk.stdout, chk.stdout

    marker = f"marker-{uuid.uuid4().hex}"
    try:
        runner.start()
        subprocess.run(["/bin/sh", "-c", "exit 0", marker], check=True)
        assert runner.stop() == 0
    finally:
        runner.kill()
    msgs = consume(broker.bootstrap, f"{prefix}.process_exec")
    mine = [m.value for m in msgs if marker in m.value["argv"]]
    assert len(mine) == 1 and mine[0]["argv"] == ["/bin/sh", "-c", "exit 0", marker]
    assert assert_identity(final_report(broker.bootstrap, prefix))["delivered"] == len(msgs)


def test_an_install_missing_its_package_data_says_so_before_any_bpf(
    installed: Installed, broker: Broker, prefix: str, tmp_path: Path
) -> None:
    # a copy of the install with one header gone, as a broken image or a hand-pruned wheel would have it
    broken = Installed(tmp_path / "venv", installed.wheel)
    shutil.copytree(installed.venv, broken.venv, symlinks=True)
    for script in (broken.venv / "bin").iterdir():  # console scripts name their venv's python
        if script.is_file() and not script.is_symlink():
            text = script.read_bytes()
            if text.startswith(b"#!"):
                script.write_bytes(text.replace(str(installed.venv).encode(), str(broken.venv).encode()))
    (broken.site_package() / "bpf" / "events.h").unlink()
    cfg = CollectorRunner(broker, prefix, tmp_path).write_config()

    r = run_cli(broken, "run", "--config", str(cfg), cwd=tmp_path)
    assert r.returncode == 6, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "events.h missing" in lines[0] and "reinstall" in lines[0], r.stderr
    assert "bpf_compiled" not in r.stderr
    chk = run_cli(broken, "check", "--config", str(cfg), cwd=tmp_path)
    assert chk.returncode != 0 and "FAIL  package data: " in chk.stdout, chk.stdout


def test_forward_from_the_install(installed: Installed, broker: Broker, prefix: str, tmp_path: Path) -> None:
    from tests.forward.httpsink import HttpSink
    from tests.forward.support import ForwarderRunner, create_topic, event_id, exec_event, produce

    sink = HttpSink()
    create_topic(broker.bootstrap, f"{prefix}.process_exec", 1)
    produce(broker.bootstrap, f"{prefix}.process_exec", [exec_event(i) for i in range(10)])
    f = ForwarderRunner(
        broker, prefix, tmp_path, command=[str(installed.cli)], cwd=tmp_path, url=sink.url, group_id=prefix
    )
    try:
        f.start()
        sink.wait_for(lambda s: len(s.events()) == 10, 60, "10 events")
        assert f.stop() == 0
    finally:
        f.kill()
        sink.down()
    assert sorted(sink.ids()) == sorted(event_id(i) for i in range(10))
