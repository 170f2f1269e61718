"""The readers' Kubernetes resolver (producer/k8s/resolver.py) against a real containerd: cgroup ids as
the kernel reports them -> the encoded k8s field, decoded here with the schemas' own K8s record."""

from __future__ import annotations

import io
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest

from producer.config import K8sConfig
from producer.k8s.resolver import PodResolver
from producer.kernel.procfs import cgroup2_mount
from producer.ledger.arena import K8S_UNRESOLVED
from producer.reader.pods import RingPods
from producer.records import catalog, codec
from producer.records.avro import NULL
from producer.records.containers import ContainerInfo, container_of
from tests.cri.pods import BUSYBOX, Containerd, CriPods, PodSpec, RunningPod, remove_pod_cgroups
from tests.cri.test_cri_client import API, WEB
from tests.support.records import CTX, exec_record

pytestmark = [pytest.mark.slow, pytest.mark.cri]

NODE = "node-a"


def k8s_schema() -> Any:
    """The events' k8s union, ["null", K8s], with the K8s record of the containers topic's schema."""
    schema = codec.load_schema("containers").parsed
    field = next(f for f in schema["fields"] if f["name"] == "k8s")
    return fastavro.parse_schema(
        {"type": "record", "name": "Probe", "fields": [{**field, "type": ["null", field["type"]]}]}
    )


def decode(encoded: bytes) -> dict[str, Any] | None:
    value: dict[str, Any] = fastavro.schemaless_reader(io.BytesIO(encoded), k8s_schema())  # type: ignore[assignment]
    return value["k8s"]  # type: ignore[no-any-return]


def cgroup_id(path: str) -> int:
    mount = cgroup2_mount()
    assert mount is not None
    return os.stat(mount / path.lstrip("/")).st_ino


def cgroup_of(pod: RunningPod, container_id: str | None = None) -> int:
    return cgroup_id(f"{pod.cgroup_parent}/{container_id or pod.container_id}")


def wait_for(cond: Callable[[], bool], timeout_s: float, what: str) -> float:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout_s, f"{what}: not within {timeout_s} s"
        time.sleep(0.01)
    return time.monotonic() - t0


@pytest.fixture
def resolver_of(containerd: Containerd) -> Iterator[Callable[..., PodResolver]]:
    made: list[PodResolver] = []

    def make(**cfg: Any) -> PodResolver:
        k = K8sConfig.model_construct(
            **{**K8sConfig().model_dump(), "runtime_socket": str(containerd.socket), **cfg}
        )
        r = PodResolver(k, NODE)
        r.start()
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


def test_running_pods_are_known_before_any_record(
    cri_pods: CriPods, resolver_of: Callable[..., PodResolver]
) -> None:
    web, api = cri_pods.run(WEB), cri_pods.run(API)
    r = resolver_of(labels=("app", "statefulset.kubernetes.io/*"), cluster="prod-eu")
    expected = [
        (web, "StatefulSet", "web", {"app": "web", "statefulset.kubernetes.io/pod-name": "web-0"}),
        (api, "Deployment", "api", {"app": "api"}),
    ]
    for pod, kind, workload, labels in expected:
        cg = cgroup_of(pod)
        wait_for(lambda cg=cg: cg in r.encoded, 5.0, f"{pod.spec.name} resolved")
        assert decode(r.encoded[cg]) == {
            "namespace": pod.spec.namespace,
            "pod": pod.spec.name,
            "pod_uid": pod.spec.uid,
            "container": pod.spec.container,
            "image": BUSYBOX,
            "labels": labels,
            "workload_kind": kind,
            "workload": workload,
            "node": NODE,
            "cluster": "prod-eu",
        }
        # the sandbox's own cgroup (its pause process) answers as container POD
        sandbox = cgroup_of(pod, pod.sandbox_id)
        wait_for(lambda sb=sandbox: sb in r.encoded, 5.0, "sandbox resolved")
        k = decode(r.encoded[sandbox])
        assert k is not None and (k["pod"], k["container"]) == (pod.spec.name, "POD")
    assert r.available is True


def test_a_new_container_is_known_when_its_cgroup_appears(
    cri_pods: CriPods, resolver_of: Callable[..., PodResolver]
) -> None:
    # no listing after the first: only inotify on the pods' cgroup tree can tell the resolver
    r = resolver_of(refresh_s=3600.0)
    wait_for(lambda: r.available is True, 5.0, "connected")
    spec = PodSpec(name="late-0", namespace="payments", labels={"app": "late"}, command=("sleep", "600"))
    pod = cri_pods.run(spec)
    cg = cgroup_of(pod)
    took = wait_for(lambda: cg in r.encoded, 2.0, "resolved without a listing")
    k = decode(r.encoded[cg])
    assert k is not None and (k["namespace"], k["pod"], k["container"]) == ("payments", "late-0", "app")
    print(f"resolved {took * 1000:.1f} ms after StartContainer returned")


def test_cgroups_that_are_not_pods_are_null_and_not_misses(
    resolver_of: Callable[..., PodResolver], tmp_path: Path
) -> None:
    r = resolver_of()
    mount = cgroup2_mount()
    assert mount is not None
    host = ContainerInfo("/system.slice/cron.service", None, None)
    assert r.unresolved(101, host) is False and r.encoded[101] == NULL
    podman = "/libpod_parent/libpod-" + "ab" * 32
    assert r.unresolved(102, ContainerInfo(podman, *container_of(podman))) is False
    assert r.encoded[102] == NULL
    # a pod-shaped cgroup the runtime does not know: a miss every time, never cached
    uid = str(uuid.uuid4())
    fake = f"/kubepods/besteffort/pod{uid}/{'cd' * 32}"
    (mount / fake.lstrip("/")).mkdir(parents=True)
    try:
        fake_id = cgroup_id(fake)
        info = ContainerInfo(fake, *container_of(fake))
        assert r.unresolved(fake_id, info) is True
        time.sleep(0.5)
        assert fake_id not in r.encoded
        assert r.unresolved(fake_id, info) is True
    finally:
        remove_pod_cgroups([uid])


def test_a_removed_container_is_kept_for_retain_s(
    cri_pods: CriPods, resolver_of: Callable[..., PodResolver]
) -> None:
    r = resolver_of(retain_s=2.0, refresh_s=0.5)
    pod = cri_pods.run(PodSpec(name="brief-0", namespace="batch", labels={}))
    cg = cgroup_of(pod)
    wait_for(lambda: cg in r.encoded, 5.0, "resolved")
    before = time.monotonic()
    cri_pods.remove(pod)  # the container, its cgroup and the pod are gone when this returns
    removed = time.monotonic() - before
    assert removed >= 2.0 or cg in r.encoded  # records a reader takes later still find their pod
    wait_for(lambda: cg not in r.encoded, 10.0, "forgotten after retain_s")
    kept = time.monotonic() - before
    assert kept >= 2.0, kept
    print(f"removal took {removed:.2f} s, forgotten {kept:.2f} s after it began (retain_s 2)")


def test_an_exited_container_attaches_for_60_s_by_default(
    cri_pods: CriPods, resolver_of: Callable[..., PodResolver]
) -> None:
    """With the default retain_s (60 s): a record of a container that exited and was removed, built a
    minute later (a reader behind on its ring), still carries its pod; after that, null."""
    r = resolver_of(refresh_s=1.0)  # retain_s: K8sConfig's default
    assert r.cfg.retain_s == 60.0
    pod = cri_pods.run(PodSpec(name="gone-0", namespace="batch", labels={}, command=("sleep", "1")))
    cg = cgroup_of(pod)
    wait_for(lambda: cg in r.encoded, 5.0, "resolved")
    # The container's cgroup goes when its task exits (the runtime deletes it), which is when the
    # 60 s start: the last moment it was still seen is a lower bound of that.
    mount = cgroup2_mount()
    assert mount is not None
    path = mount / f"{pod.cgroup_parent}/{pod.container_id}".lstrip("/")
    gone_at = time.monotonic()
    while path.exists():
        gone_at = time.monotonic()
        time.sleep(0.005)
    cri_pods.wait_exited(pod.container_id)
    cri_pods.remove(pod)  # container, sandbox and cgroups gone; the runtime lists neither any more
    words = [0] * 16
    encode = catalog.BY_NAME["process_exec"].fast_encoder(CTX, pods=RingPods(r, words, K8S_UNRESOLVED))
    schema = codec.load_schema("process_exec")

    def k8s_of_a_record() -> dict[str, Any] | None:
        body, _ = encode(exec_record(cgroup_id=cg), 0, 0, lambda _cg: None)
        return codec.decode(schema.header + body, {schema.fingerprint: schema})[1]["k8s"]  # type: ignore[no-any-return]

    time.sleep(58.0)
    k = k8s_of_a_record()
    assert k is not None and (k["namespace"], k["pod"], k["container"]) == ("batch", "gone-0", "app")
    took = wait_for(lambda: cg not in r.encoded, 10.0, "forgotten after retain_s")
    assert time.monotonic() - gone_at >= 60.0
    assert k8s_of_a_record() is None and words[K8S_UNRESOLVED] == 0  # no cgroup, no pod path: no miss
    print(f"attached 58 s after removal, forgotten {58.0 + took:.1f} s after it")


def test_runtime_down_then_back(
    containerd: Containerd, cri_pods: CriPods, resolver_of: Callable[..., PodResolver]
) -> None:
    web = cri_pods.run(WEB)
    r = resolver_of(refresh_s=0.5)
    cg = cgroup_of(web)
    wait_for(lambda: cg in r.encoded, 5.0, "resolved")
    known = r.encoded[cg]
    mount = cgroup2_mount()
    assert mount is not None
    containerd.stop()
    try:
        wait_for(lambda: r.available is False, 5.0, "noticed the runtime is gone")
        assert r.encoded[cg] == known  # what is known stays known
        # a pod cgroup seen while the runtime is down: unresolved, counted by the caller
        path = f"{web.cgroup_parent}/{'ef' * 32}"
        (mount / path.lstrip("/")).mkdir()
        try:
            new_cg = cgroup_id(path)
            assert r.unresolved(new_cg, ContainerInfo(path, *container_of(path))) is True
        finally:
            (mount / path.lstrip("/")).rmdir()
    finally:
        containerd.up()
    wait_for(lambda: r.available is True, 10.0, "the runtime answers again")
    late = cri_pods.run(PodSpec(name="after-0", namespace="payments", labels={}))
    wait_for(lambda: cgroup_of(late) in r.encoded, 5.0, "a new pod resolved after the restart")
