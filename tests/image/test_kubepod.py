"""The pod translator's pure parts (no podman, no kernel): it refuses what it does not know."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.helm.chart import render
from tests.image.kubepod import quantity, runtime_default_seccomp, translate


def _translate(pod: dict[str, Any], tmp_path: Path) -> list[str]:
    return translate(
        pod, {"ekp-ebpf-kafka-producer": {"config.yaml": "{}"}}, workdir=tmp_path, node_name="n"
    ).args


def test_the_least_privilege_pod_becomes_its_confinement(tmp_path: Path) -> None:
    cri = tmp_path / "containerd.sock"  # the kubelet starts the pod only when the socket is there
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(cri))
        args = " ".join(_translate(render(sets={"criSocket": str(cri)}).pod, tmp_path))
    for flags in (
        "--pid=host",
        "--cap-drop ALL --cap-add BPF --cap-add PERFMON --cap-add IPC_LOCK",
        "--security-opt no-new-privileges",
        "--read-only --read-only-tmpfs=false",
        "--user 0",
        f"--security-opt seccomp={tmp_path}/seccomp.json",
        "--volume /sys/kernel/tracing:/sys/kernel/tracing:ro",
        f"--volume {tmp_path}/volumes/config/config.yaml:/etc/ebpf-kafka-producer/config.yaml:ro",
        "--memory 1073741824",
        f"--volume {cri}:{cri}:ro",
    ):
        assert flags in args
    assert "--privileged" not in args


@pytest.mark.parametrize(
    ("where", "key"),
    [("pod", "shareProcessNamespace"), ("container", "lifecycle"), ("securityContext", "procMount")],
)
def test_a_field_it_does_not_know_is_an_error(tmp_path: Path, where: str, key: str) -> None:
    pod = render(sets={"criSocket": ""}).pod
    target = {
        "pod": pod,
        "container": pod["containers"][0],
        "securityContext": pod["containers"][0]["securityContext"],
    }[where]
    target[key] = True
    with pytest.raises(AssertionError, match=key):
        _translate(pod, tmp_path)


def test_runtime_default_allows_bpf_and_perf_event_open_on_their_capabilities(tmp_path: Path) -> None:
    base = tmp_path / "base.json"
    errno = {"action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_SYS_ADMIN"]}}
    base.write_text(json.dumps({"syscalls": [{"names": ["bpf", "mount", "perf_event_open"], **errno}]}))
    rules = json.loads(runtime_default_seccomp(tmp_path / "out.json", base).read_text())["syscalls"]
    denied = {n: r["excludes"]["caps"] for r in rules if r["action"] == "SCMP_ACT_ERRNO" for n in r["names"]}
    assert denied == {
        "mount": ["CAP_SYS_ADMIN"],  # the other syscalls of the shared rule keep it as it was
        "bpf": ["CAP_SYS_ADMIN", "CAP_BPF"],
        "perf_event_open": ["CAP_SYS_ADMIN", "CAP_PERFMON"],
    }
    allowed = {r["names"][0]: r["includes"]["caps"] for r in rules if r["action"] == "SCMP_ACT_ALLOW"}
    assert allowed == {"bpf": ["CAP_BPF"], "perf_event_open": ["CAP_PERFMON"]}


def test_quantities() -> None:
    assert quantity("1Gi") == 2**30
    assert quantity("256Mi") == 256 * 2**20
    assert quantity("100m", cpu=True) == 0.1
    assert quantity("2", cpu=True) == 2
    with pytest.raises(AssertionError):
        quantity("1Qi")
