"""Test harness: a real containerd (scripts/containerd.sh) and pods made through the project's own CRI stubs.

There is no kubelet, so the harness does what kubelet does that matters here: it names the pod cgroup
/kubepods/besteffort/pod<uid> (cgroupfs driver), puts kubelet's labels and annotations on sandboxes and
containers, and removes the pod cgroup directories after the pod, which containerd leaves behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc

from producer.k8s.cri_v1 import api_pb2 as pb
from producer.k8s.cri_v1 import api_pb2_grpc
from tests.support import ROOT

SCRIPT = ROOT / "scripts/containerd.sh"
BUSYBOX = "localhost/ekp-busybox:1"
CGROUP_ROOT = Path("/sys/fs/cgroup")
TIMEOUT_S = 10.0


class Containerd:
    """The daemon, driven by scripts/containerd.sh; killed by the pid it recorded."""

    def __init__(self) -> None:
        self.socket = Path(self._script("socket", capture=True).strip())

    def _script(self, action: str, *, capture: bool = False) -> str:
        r = subprocess.run(["bash", str(SCRIPT), action], check=True, text=True, capture_output=capture)
        return r.stdout if capture else ""

    def up(self) -> None:
        self._script("up")

    def stop(self) -> None:
        """containerd only: the pods' shims and processes live on, as on a node whose runtime restarts."""
        self._script("stop")

    def down(self) -> None:
        self._script("down")

    def pid(self) -> int:
        return int((self.socket.parent / "containerd.pid").read_text())


@dataclass(frozen=True)
class PodSpec:
    name: str
    namespace: str
    labels: Mapping[str, str]  # the pod's own labels (app, pod-template-hash, ...)
    container: str = "app"
    command: Sequence[str] = ("sleep", "600")
    annotations: Mapping[str, str] = field(default_factory=dict)
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True)
class RunningPod:
    spec: PodSpec
    sandbox_id: str
    container_id: str
    sandbox_config: pb.PodSandboxConfig

    @property
    def cgroup_parent(self) -> str:
        return f"/kubepods/besteffort/pod{self.spec.uid}"


def kubelet_pod_labels(spec: PodSpec) -> dict[str, str]:
    return {
        **spec.labels,
        "io.kubernetes.pod.name": spec.name,
        "io.kubernetes.pod.namespace": spec.namespace,
        "io.kubernetes.pod.uid": spec.uid,
    }


def kubelet_container_labels(spec: PodSpec) -> dict[str, str]:
    return {
        "io.kubernetes.container.name": spec.container,
        "io.kubernetes.pod.name": spec.name,
        "io.kubernetes.pod.namespace": spec.namespace,
        "io.kubernetes.pod.uid": spec.uid,
    }


class CriPods:
    """RunPodSandbox / CreateContainer / StartContainer and the teardown, through producer.k8s.cri_v1."""

    def __init__(self, socket: Path, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._channel = grpc.insecure_channel(f"unix://{socket}")
        self.rt = api_pb2_grpc.RuntimeServiceStub(self._channel)
        self.pods: list[RunningPod] = []

    def close(self) -> None:
        self._channel.close()

    def run(self, spec: PodSpec, *, image: str = BUSYBOX) -> RunningPod:
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=spec.name, namespace=spec.namespace, uid=spec.uid, attempt=0),
            labels=kubelet_pod_labels(spec),
            annotations={
                **spec.annotations,
                "kubernetes.io/config.source": "api",
                "kubernetes.io/config.seen": datetime.now(UTC).isoformat(),
            },
            log_directory=str(self.log_dir / spec.uid),
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=f"/kubepods/besteffort/pod{spec.uid}",
                # host network: nothing to set up, no firewall rules; no hostname (runc refuses it there)
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(network=pb.NODE)
                ),
            ),
        )
        (self.log_dir / spec.uid).mkdir(parents=True, exist_ok=True)
        sandbox_id = self.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=60).pod_sandbox_id
        container = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=spec.container, attempt=0),
            image=pb.ImageSpec(image=image),
            command=list(spec.command),
            labels=kubelet_container_labels(spec),
            annotations={
                "io.kubernetes.container.hash": "5b3e4c1a",
                "io.kubernetes.container.restartCount": "0",
                "io.kubernetes.container.terminationMessagePath": "/dev/termination-log",
                "io.kubernetes.container.terminationMessagePolicy": "File",
                "io.kubernetes.pod.terminationGracePeriod": "30",
            },
            log_path=f"{spec.container}/0.log",
            linux=pb.LinuxContainerConfig(),
        )
        pod = RunningPod(spec, sandbox_id, "", config)
        self.pods.append(pod)  # torn down even if the container fails to start
        cid = self.rt.CreateContainer(
            pb.CreateContainerRequest(pod_sandbox_id=sandbox_id, config=container, sandbox_config=config),
            timeout=TIMEOUT_S,
        ).container_id
        self.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=TIMEOUT_S)
        pod = RunningPod(spec, sandbox_id, cid, config)
        self.pods[-1] = pod
        return pod

    def verbose_status(self, container_id: str) -> tuple[pb.ContainerStatus, dict[str, object]]:
        """The raw reply, and containerd's own verbose "info" document (crictl inspect shows the same)."""
        r = self.rt.ContainerStatus(
            pb.ContainerStatusRequest(container_id=container_id, verbose=True), timeout=TIMEOUT_S
        )
        return r.status, json.loads(r.info["info"])

    def sandbox_pid(self, sandbox_id: str) -> int:
        r = self.rt.PodSandboxStatus(
            pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=True), timeout=TIMEOUT_S
        )
        pid = json.loads(r.info["info"])["pid"]
        assert isinstance(pid, int) and pid > 0
        return pid

    def host_pid(self, container_id: str) -> int:
        _, info = self.verbose_status(container_id)
        pid = info["pid"]
        assert isinstance(pid, int) and pid > 0, info.get("pid")
        return pid

    def wait_exited(self, container_id: str, timeout_s: float = 20.0) -> pb.ContainerStatus:
        deadline = time.monotonic() + timeout_s
        while True:
            status, _ = self.verbose_status(container_id)
            if status.state == pb.CONTAINER_EXITED:
                return status
            assert time.monotonic() < deadline, f"{container_id} still {status.state} after {timeout_s} s"
            time.sleep(0.1)

    def stop_sandbox(self, pod: RunningPod) -> None:
        self.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod.sandbox_id), timeout=60)

    def remove(self, pod: RunningPod) -> None:
        self.stop_sandbox(pod)
        self.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod.sandbox_id), timeout=60)
        remove_pod_cgroups([pod.spec.uid])
        self.pods = [p for p in self.pods if p.sandbox_id != pod.sandbox_id]

    def sweep(self) -> list[str]:
        """Every sandbox this containerd knows (its root is the tests' own): stopped, removed, no cgroups."""
        items = self.rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=TIMEOUT_S).items
        for s in items:
            self.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=s.id), timeout=60)
            self.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=s.id), timeout=60)
        uids = [s.metadata.uid for s in items] + [p.spec.uid for p in self.pods]
        remove_pod_cgroups(uids)
        self.pods = []
        return [s.id for s in items]


def remove_pod_cgroups(uids: Iterable[str]) -> None:
    """rmdir, leaf first, the pod<uid> directories under every hierarchy; then kubepods/* if empty.

    Kubelet does this on a node; containerd removes only the containers' own directories. rmdir never
    removes a cgroup that still has processes or children, so this cannot break a live pod.
    """
    for hierarchy in CGROUP_ROOT.iterdir():
        kubepods = hierarchy / "kubepods"
        if not kubepods.is_dir():
            continue
        for uid in uids:
            pod_dir = kubepods / "besteffort" / f"pod{uid}"
            if pod_dir.is_dir():
                for dirpath, _dirs, _files in sorted(os.walk(pod_dir), key=lambda w: -len(w[0])):
                    Path(dirpath).rmdir()
        for d in (kubepods / "besteffort", kubepods):
            with contextlib.suppress(OSError):  # still in use by another pod, or not ours
                d.rmdir()
