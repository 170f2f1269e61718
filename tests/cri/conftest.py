"""A real containerd for the session (scripts/containerd.sh up), and pods that are gone after each test.

Needs root (cgroups, mounts), not BPF. Shared machines: run under flock /tmp/ekp-test.lock.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from producer.k8s.cri import CriClient
from tests.cri.pods import Containerd, CriPods


@pytest.fixture(scope="session")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    if os.geteuid() != 0:
        pytest.skip("containerd needs root")
    d = Containerd()
    d.up()
    # a run that died before its teardown left pods in containerd's root: start from none
    leftovers = CriPods(d.socket, tmp_path_factory.mktemp("cri-logs"))
    leftovers.sweep()
    leftovers.close()
    try:
        yield d
    finally:
        d.up()  # a test may have left it stopped; the sweep needs it
        last = CriPods(d.socket, tmp_path_factory.mktemp("cri-logs"))
        try:
            last.sweep()
        finally:
            last.close()
            d.down()


@pytest.fixture
def cri_pods(containerd: Containerd, tmp_path: Path) -> Iterator[CriPods]:
    """Pods for one test; whatever it ran is stopped and removed, cgroups included, even when it fails."""
    pods = CriPods(containerd.socket, tmp_path)
    try:
        yield pods
    finally:
        containerd.up()  # no-op when it runs
        for p in list(pods.pods):
            pods.remove(p)
        pods.close()


@pytest.fixture
def cri(containerd: Containerd) -> Iterator[CriClient]:
    """The product's client on the test containerd's socket."""
    with CriClient(containerd.socket, timeout_s=2.0) as c:
        yield c
