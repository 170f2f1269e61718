"""The product's CRI client against a real containerd, with pods made as kubelet would make them.

The chain a later resolver will walk: a process's cgroup (as the kernel reports it) -> the container id
(producer/records/containers.py) -> ContainerStatus -> its sandbox -> PodSandboxStatus -> the workload.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from producer.errors import CriNotFoundError, RuntimeUnavailableError
from producer.k8s.cri import CriClient
from producer.k8s.model import ContainerState, PodState
from producer.k8s.workload import Workload, WorkloadKind, workload_of_pod
from producer.kernel.procfs import cgroup2_mount
from producer.records.containers import ContainerResolver, container_of
from tests.cri.pods import BUSYBOX, Containerd, CriPods, PodSpec, kubelet_container_labels, kubelet_pod_labels

pytestmark = [pytest.mark.slow, pytest.mark.cri]

WEB = PodSpec(
    name="web-0",
    namespace="payments",
    labels={
        "app": "web",
        "controller-revision-hash": "web-6d8f7c9b4",
        "statefulset.kubernetes.io/pod-name": "web-0",
        "apps.kubernetes.io/pod-index": "0",
    },
)
API = PodSpec(
    name="api-5d8f7c9b4-x2x9q",
    namespace="shop",
    labels={"app": "api", "pod-template-hash": "5d8f7c9b4"},
    container="server",
)


def cgroup_v2_path(pid: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    raise AssertionError(f"no cgroup v2 line for pid {pid}")


def wait_all_threads_stopped(pid: int) -> None:
    """kill() returns before every thread has stopped; a thread still running could yet answer."""
    deadline = time.monotonic() + 5.0
    while True:
        states = [
            (t / "stat").read_text().rsplit(")", 1)[1].split()[0] for t in Path(f"/proc/{pid}/task").iterdir()
        ]
        if set(states) == {"t"} or set(states) == {"T"}:
            return
        assert time.monotonic() < deadline, states
        time.sleep(0.01)


def test_two_pods_in_two_namespaces_from_cgroup_to_workload(cri_pods: CriPods, cri: CriClient) -> None:
    expected = {
        "web-0": Workload(WorkloadKind.STATEFULSET, "web"),
        "api-5d8f7c9b4-x2x9q": Workload(WorkloadKind.DEPLOYMENT, "api"),
    }
    running = [cri_pods.run(WEB), cri_pods.run(API)]
    resolver = ContainerResolver()
    for pod in running:
        spec = pod.spec
        pid = cri_pods.host_pid(pod.container_id)
        assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"600"]

        # the kernel's view: the cgroup v2 path, and the cgroup id BPF would report (its inode)
        path = cgroup_v2_path(pid)
        assert path == f"{pod.cgroup_parent}/{pod.container_id}"
        assert container_of(path) == (pod.container_id, "containerd")
        mount = cgroup2_mount()
        assert mount is not None
        cgroup_id = os.stat(mount / path.lstrip("/")).st_ino
        assert resolver.container_id(cgroup_id) == pod.container_id

        c = cri.container_status(pod.container_id)
        assert (c.id, c.name, c.sandbox_id, c.pid) == (pod.container_id, spec.container, pod.sandbox_id, pid)
        assert c.state is ContainerState.RUNNING and c.exit_code is None and c.finished_at_ns is None
        assert c.started_at_ns is not None and c.started_at_ns >= c.created_at_ns > 0
        assert c.image == BUSYBOX
        assert c.image_ref.startswith("sha256:")
        # only kubelet's labels are on the container; the pod's app labels are on the sandbox
        assert dict(c.labels) == kubelet_container_labels(spec)
        assert c.annotations["io.kubernetes.container.restartCount"] == "0"

        p = cri.pod_sandbox_status(c.sandbox_id)
        assert (p.id, p.uid, p.name, p.namespace) == (pod.sandbox_id, spec.uid, spec.name, spec.namespace)
        assert p.state is PodState.READY
        assert dict(p.labels) == kubelet_pod_labels(spec)
        assert p.annotations["kubernetes.io/config.source"] == "api"
        assert workload_of_pod(p) == expected[spec.name]

        # the sandbox's own process (pause) sits in <pod cgroup>/<sandbox id>: not a container to the CRI
        pause = cri_pods.sandbox_pid(pod.sandbox_id)
        assert container_of(cgroup_v2_path(pause)) == (pod.sandbox_id, "containerd")
        with pytest.raises(CriNotFoundError):
            cri.container_status(pod.sandbox_id)
        assert cri.pod_sandbox_status(pod.sandbox_id).uid == spec.uid

        listed = cri.list_containers(sandbox_id=pod.sandbox_id)
        assert [(x.id, x.name, x.image, x.sandbox_id) for x in listed] == [
            (c.id, c.name, c.image, c.sandbox_id)
        ]
    by_label = cri.list_pod_sandboxes(labels={"app": "api"}, state=PodState.READY)
    assert [(p.namespace, p.name) for p in by_label] == [("shop", "api-5d8f7c9b4-x2x9q")]
    assert {x.id for x in cri.list_containers(state=ContainerState.RUNNING)} == {
        p.container_id for p in running
    }


def test_detect_finds_the_runtime_among_the_candidates(containerd: Containerd, tmp_path: Path) -> None:
    candidates = (str(tmp_path / "run/containerd/containerd.sock"), str(containerd.socket))
    with CriClient.detect(candidates=candidates) as c:
        v = c.version()
    assert c.socket == str(containerd.socket)
    assert (v.runtime_name, v.runtime_api_version) == ("containerd", "v1")


def test_an_exited_container_is_answered_until_its_pod_is_removed(cri_pods: CriPods, cri: CriClient) -> None:
    spec = PodSpec(
        name="once-8x7kq", namespace="batch", labels={"job-name": "once"}, command=("sh", "-c", "exit 3")
    )
    pod = cri_pods.run(spec)
    cri_pods.wait_exited(pod.container_id)
    exited_at = time.monotonic()
    # kubelet removes dead containers only when it garbage-collects them; until then the runtime answers
    while time.monotonic() - exited_at < 5.0:
        c = cri.container_status(pod.container_id)
        assert c.state is ContainerState.EXITED and c.exit_code == 3
        # not >= started_at: when the process exits at once, containerd stamps the start after the exit
        assert c.finished_at_ns is not None and c.finished_at_ns > c.created_at_ns
        assert c.pid is None  # no process any more
        assert dict(c.labels) == kubelet_container_labels(spec) and c.sandbox_id == pod.sandbox_id
        time.sleep(0.5)
    assert workload_of_pod(cri.pod_sandbox_status(pod.sandbox_id)) == Workload(WorkloadKind.JOB, "once")

    # a deleted pod: kubelet stops the sandbox first; its containers are still answered until removal
    cri_pods.stop_sandbox(pod)
    assert cri.pod_sandbox_status(pod.sandbox_id).state is PodState.NOT_READY
    assert cri.container_status(pod.container_id).exit_code == 3

    cri_pods.remove(pod)
    with pytest.raises(CriNotFoundError):
        cri.container_status(pod.container_id)
    with pytest.raises(CriNotFoundError):
        cri.pod_sandbox_status(pod.sandbox_id)


def test_runtime_hung_stopped_and_restarted(
    containerd: Containerd, cri_pods: CriPods, cri: CriClient
) -> None:
    pod = cri_pods.run(WEB)
    pid = cri.container_status(pod.container_id).pid
    assert pid is not None

    # hung (SIGSTOP): the socket still accepts, nothing answers: the call's deadline ends it
    daemon = containerd.pid()
    os.kill(daemon, signal.SIGSTOP)
    try:
        wait_all_threads_stopped(daemon)
        t0 = time.monotonic()
        with pytest.raises(RuntimeUnavailableError) as hung:
            cri.container_status(pod.container_id)
        hung_s = time.monotonic() - t0
    finally:
        os.kill(daemon, signal.SIGCONT)
    assert cri.timeout_s - 0.1 < hung_s < cri.timeout_s + 1.0, hung_s
    assert f"the CRI runtime at {containerd.socket} did not answer ContainerStatus" in str(hung.value)

    # stopped: refused at once, well within the deadline
    containerd.stop()
    t0 = time.monotonic()
    with pytest.raises(RuntimeUnavailableError) as down:
        cri.version()
    assert time.monotonic() - t0 < cri.timeout_s
    assert str(containerd.socket) in str(down.value)
    with pytest.raises(RuntimeUnavailableError):
        cri.container_status(pod.container_id)
    assert Path(f"/proc/{pid}").exists()  # the pod lives on without its runtime

    # started again: the same client answers within a second or so, and still knows the pod
    containerd.up()
    t0 = time.monotonic()
    while True:
        try:
            cri.version()
            break
        except RuntimeUnavailableError:
            assert time.monotonic() - t0 < 5.0, "no answer 5 s after containerd came back"
            time.sleep(0.05)
    c = cri.container_status(pod.container_id)
    assert (c.state, c.pid, c.sandbox_id) == (ContainerState.RUNNING, pid, pod.sandbox_id)
