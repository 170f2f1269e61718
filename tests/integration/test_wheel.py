"""The wheel carries the CRI stubs it generated at build time, and they import from the wheel alone.

The editable install the other tests use generates them into the source tree (setup.py), so only a real
wheel shows that a non-editable install has them.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STUBS = ["__init__.py", "api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py"]


@pytest.mark.slow
def test_wheel_contains_and_imports_the_generated_stubs(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("ebpf_kafka_producer-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"producer/k8s/cri_v1/{f}" for f in STUBS} <= names
    assert "producer/k8s/proto/api.proto" in names  # the definition (and its license header) ships too

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "import producer.k8s.cri as cri, producer.k8s.cri_v1.api_pb2 as pb;"
        "print(cri.__file__); print(pb.DESCRIPTOR.name);"
        "print(pb.ContainerStatusRequest(container_id='x', verbose=True).SerializeToString().hex())"
    )
    # the wheel's directory first: the editable install's source tree must not be what imports
    out = subprocess.run(
        [sys.executable, "-c", probe],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
    ).stdout.split()
    assert out[0] == str(site / "producer/k8s/cri.py")
    assert out[1] == "producer/k8s/cri_v1/api.proto"
    assert out[2] == "0a01781001"  # field 1 "x", field 2 true: the CRI wire format
