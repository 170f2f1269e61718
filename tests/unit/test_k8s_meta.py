"""The k8s field without a runtime: the label allow list, the record, and its hand-written Avro encoding
against fastavro's for the schemas' own K8s record; the pods' cgroup paths; the inventory's diff and
retention, and the containers watcher's records, over a runtime stand-in (pure logic)."""

from __future__ import annotations

import io
from types import MappingProxyType
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from producer.config import K8sConfig
from producer.errors import CriNotFoundError
from producer.k8s.inventory import Inventory
from producer.k8s.meta import GONE, SEEN, K8sMeta, KeyFilter, meta_of
from producer.k8s.model import Container, ContainerState, Pod, PodState
from producer.k8s.podcgroups import is_pod_path, pod_container_id
from producer.k8s.watch import Watch
from producer.records import codec

CID = "a" * 64
SID = "b" * 64


def k8s_union_schema() -> Any:
    schema = codec.load_schema("containers").parsed
    field = next(f for f in schema["fields"] if f["name"] == "k8s")
    return fastavro.parse_schema(
        {"type": "record", "name": "Probe", "fields": [{**field, "type": ["null", field["type"]]}]}
    )


def fastavro_bytes(value: dict[str, Any] | None) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, k8s_union_schema(), {"k8s": value})
    return out.getvalue()


def pod(**over: Any) -> Pod:
    base: dict[str, Any] = {
        "id": SID,
        "uid": "0d5f3c8e-7a41-4b9e-9f2a-5c1e8b7d2a10",
        "name": "web-0",
        "namespace": "payments",
        "attempt": 0,
        "state": PodState.READY,
        "created_at_ns": 1_700_000_000_000_000_000,
        "labels": MappingProxyType(
            {
                "app": "web",
                "statefulset.kubernetes.io/pod-name": "web-0",
                "tier": "front",
                "io.kubernetes.pod.uid": "x",
            }
        ),
        "annotations": MappingProxyType({"kubernetes.io/config.source": "api", "team": "pay"}),
    }
    return Pod(**{**base, **over})


def container(**over: Any) -> Container:
    base: dict[str, Any] = {
        "id": CID,
        "name": "app",
        "attempt": 1,
        "sandbox_id": SID,
        "image": "registry.example/web:1.2",
        "image_ref": "sha256:" + "c" * 64,
        "image_id": "",
        "state": ContainerState.RUNNING,
        "created_at_ns": 1_700_000_001_000_000_000,
        "started_at_ns": None,
        "finished_at_ns": None,
        "exit_code": None,
        "pid": None,
        "labels": MappingProxyType({}),
        "annotations": MappingProxyType({}),
    }
    return Container(**{**base, **over})


def test_key_filter_takes_keys_and_globs_and_sorts() -> None:
    labels = {
        "tier": "front",
        "app": "web",
        "app.kubernetes.io/name": "web",
        "app.kubernetes.io/part-of": "shop",
    }
    assert KeyFilter([]).select(labels) == {} and not KeyFilter([])
    assert list(KeyFilter(["tier", "app"]).select(labels)) == ["app", "tier"]
    assert KeyFilter(["app.kubernetes.io/*"]).select(labels) == {
        "app.kubernetes.io/name": "web",
        "app.kubernetes.io/part-of": "shop",
    }
    assert KeyFilter(["*"]).select(labels) == dict(sorted(labels.items()))
    assert KeyFilter(["ap"]).select(labels) == {}  # whole keys, not prefixes


def test_meta_of_a_container_and_of_the_sandbox() -> None:
    m = meta_of(pod(), container(), node="node-a", cluster="prod", labels=KeyFilter(["app", "tier"]))
    assert m.record() == {
        "namespace": "payments",
        "pod": "web-0",
        "pod_uid": "0d5f3c8e-7a41-4b9e-9f2a-5c1e8b7d2a10",
        "container": "app",
        "image": "registry.example/web:1.2",
        "labels": {"app": "web", "tier": "front"},
        "workload_kind": "StatefulSet",
        "workload": "web",
        "node": "node-a",
        "cluster": "prod",
    }
    sandbox = meta_of(pod(name="x", labels={}), None, node="n", cluster="", labels=KeyFilter([]))
    assert (sandbox.container, sandbox.image, sandbox.cluster, sandbox.workload_kind) == (
        "POD",
        "",
        None,
        None,
    )


def test_the_encoding_is_fastavros() -> None:
    m = meta_of(pod(), container(), node="node-a", cluster="prod", labels=KeyFilter(["*"]))
    assert m.encode_union() == fastavro_bytes(m.record())
    empty = meta_of(pod(labels={}), container(), node="n", cluster=None, labels=KeyFilter([]))
    assert empty.encode_union() == fastavro_bytes(empty.record())
    assert fastavro_bytes(None) == b"\x00"


texts = st.text(max_size=300)


@given(
    st.builds(
        K8sMeta,
        namespace=texts,
        pod=texts,
        pod_uid=texts,
        container=texts,
        image=texts,
        labels=st.dictionaries(texts, texts, max_size=20),
        workload_kind=st.none() | texts,
        workload=st.none() | texts,
        node=texts,
        cluster=st.none() | texts,
    )
)
def test_the_encoding_is_fastavros_for_any_values(m: K8sMeta) -> None:
    assert m.encode_union() == fastavro_bytes(m.record())


@pytest.mark.parametrize(
    ("path", "cid"),
    [
        (f"/kubepods/besteffort/pod0d5f/{CID}", CID),
        (f"/kubepods/pod0d5f/{CID}", CID),  # guaranteed QoS: no class directory
        (
            f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0d5f.slice/cri-containerd-{CID}.scope",
            CID,
        ),
        (f"/kubepods.slice/kubepods-pod0d5f.slice/crio-{CID}.scope", CID),
        ("/kubepods/besteffort/pod0d5f", None),  # the pod, not a container
        (f"/system.slice/docker-{CID}.scope", None),  # a container, not a pod's
        (f"/libpod_parent/libpod-{CID}", None),
        ("/user.slice/kubepods-notes.scope", None),
    ],
)
def test_pod_cgroup_paths(path: str, cid: str | None) -> None:
    assert pod_container_id(path) == cid
    assert is_pod_path(path) == (path.split("/")[1] in ("kubepods", "kubepods.slice"))


class Runtime:
    """A stand-in for CriClient over lists the test edits (the real one: tests/cri)."""

    def __init__(self) -> None:
        self.pods: list[Pod] = []
        self.containers: list[Container] = []
        self.calls: list[str] = []

    def list_pod_sandboxes(self) -> list[Pod]:
        self.calls.append("ListPodSandbox")
        return list(self.pods)

    def list_containers(self, *, container_id: str = "") -> list[Container]:
        self.calls.append("ListContainers")
        return [c for c in self.containers if c.id.startswith(container_id)]

    def pod_sandbox_status(self, sandbox_id: str) -> Pod:
        self.calls.append("PodSandboxStatus")
        for p in self.pods:
            if p.id == sandbox_id:
                return p
        raise CriNotFoundError(sandbox_id)

    def version(self) -> Any:
        from producer.k8s.model import RuntimeVersion

        return RuntimeVersion("containerd", "1.7.2", "v1")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_inventory_keeps_what_went_for_retain_s() -> None:
    rt, clock = Runtime(), Clock()
    inv = Inventory(60.0, clock)
    rt.pods, rt.containers = [pod()], [container()]
    d = inv.refresh(rt)  # type: ignore[arg-type]
    assert sorted(e.id for e in d.added) == sorted([CID, SID]) and not d.removed
    assert inv.get(CID) is not None and inv.get(CID).container.name == "app"  # type: ignore[union-attr]
    assert inv.get(SID).sandbox  # type: ignore[union-attr]

    rt.pods, rt.containers = [], []
    clock.t += 5
    d = inv.refresh(rt)  # type: ignore[arg-type]
    assert sorted(e.id for e in d.removed) == sorted([CID, SID])
    assert inv.get(CID) is not None  # gone, still known
    clock.t += 59.9
    assert inv.expire() == [] and inv.get(CID) is not None
    clock.t += 0.2
    assert sorted(inv.expire()) == sorted([CID, SID]) and inv.get(CID) is None


def test_inventory_resolves_one_id_alone() -> None:
    rt = Runtime()
    inv = Inventory(60.0)
    rt.pods, rt.containers = [pod()], [container()]
    e = inv.resolve(rt, CID)  # type: ignore[arg-type]
    assert e is not None and e.pod.name == "web-0" and e.container is not None
    assert rt.calls == ["ListContainers", "PodSandboxStatus"]
    rt.calls.clear()
    assert inv.resolve(rt, SID).sandbox  # type: ignore[arg-type, union-attr]
    assert inv.resolve(rt, "d" * 64) is None  # type: ignore[arg-type]
    assert inv.resolve(rt, CID) is e  # type: ignore[arg-type]


def test_the_watcher_publishes_seen_then_gone_once_each() -> None:
    rt = Runtime()
    out: list[dict[str, Any]] = []
    cfg = K8sConfig(annotations=("team",), cluster="prod")
    w = Watch(cfg, "node-a", out.append)
    w.cgroups[CID] = 481
    rt.pods, rt.containers = [pod()], [container()]
    assert w.sync(rt) == 2  # type: ignore[arg-type]
    by_id = {r["container_id"]: r for r in out}
    c = by_id[CID]
    assert (c["event"], c["kind"], c["state"], c["cgroup_id"], c["runtime"]) == (
        SEEN,
        "container",
        "running",
        481,
        "containerd 1.7.2",
    )
    assert c["k8s"]["labels"] == dict(sorted(pod().labels.items()))  # every label here
    assert c["annotations"] == {"team": "pay"}
    assert by_id[SID]["kind"] == "sandbox" and by_id[SID]["k8s"]["container"] == "POD"
    for r in out:  # what the supervisor will encode
        codec.Encoder(codec.load_schema("containers")).encode(r)

    out.clear()
    assert w.sync(rt) == 0  # type: ignore[arg-type]
    rt.containers = [
        container(state=ContainerState.EXITED, exit_code=3, finished_at_ns=1_700_000_002_000_000_000)
    ]
    assert w.sync(rt) == 1  # type: ignore[arg-type]
    assert (out[0]["event"], out[0]["state"], out[0]["exit_code"]) == (GONE, "exited", 3)
    out.clear()
    rt.containers, rt.pods = [], []
    assert w.sync(rt) == 1  # type: ignore[arg-type]  # only the sandbox: the container was reported gone
    assert (out[0]["container_id"], out[0]["event"], out[0]["state"]) == (SID, GONE, "removed")


def test_a_container_first_seen_exited_is_only_gone() -> None:
    rt = Runtime()
    out: list[dict[str, Any]] = []
    w = Watch(K8sConfig(), "n", out.append)
    rt.pods, rt.containers = [pod()], [container(state=ContainerState.EXITED, exit_code=0)]
    w.sync(rt)  # type: ignore[arg-type]
    assert {(r["container_id"], r["event"]) for r in out} == {(CID, GONE), (SID, SEEN)}


def test_a_ring_counts_only_pod_cgroups_it_does_not_know() -> None:
    from producer.k8s.resolver import PodResolver
    from producer.ledger.arena import K8S_UNRESOLVED
    from producer.reader.pods import RingPods
    from producer.records.containers import ContainerInfo

    words = [0] * 16
    resolver = PodResolver(K8sConfig(), "node-a", mount=None)  # its thread is not started: no runtime
    ring = RingPods(resolver, words, K8S_UNRESOLVED)
    infos = {
        1: ContainerInfo("/system.slice/cron.service", None, None),
        2: ContainerInfo(f"/kubepods/besteffort/pod0d5f/{CID}", CID, "containerd"),
    }
    assert ring.missed(1, infos.get) == b"\x00" and ring.encoded[1] == b"\x00"  # null for good, no miss
    assert ring.missed(2, infos.get) == b"\x00" and 2 not in ring.encoded
    assert ring.missed(2, infos.get) == b"\x00"
    assert words[K8S_UNRESOLVED] == 2  # each record built without its pod
    resolver.encoded[2] = b"\x02pod"  # what the resolver's thread writes once it knows
    assert ring.encoded.get(2) == b"\x02pod"
    assert ring.missed(3, lambda _cg: None) == b"\x00" and words[K8S_UNRESOLVED] == 2  # unknown: no miss
    ring.index = 5  # a shared ring counts on the row of the record's CPU
    assert ring.missed(4, {4: infos[2]}.get) == b"\x00" and words[5] == 1


class FakePublisher:
    """librdkafka's answers as the supervisor's Publisher gives them: queued, no room, or refused."""

    def __init__(self) -> None:
        self.answer: str | None = None
        self.sent: list[tuple[bytes, Any]] = []

    def send(self, topic: str, value: bytes, key: bytes, headers: Any, on_result: Any) -> str | None:
        if self.answer is None:
            self.sent.append((key, on_result))
        return self.answer


def test_the_containers_topic_counts_every_record_it_is_handed() -> None:
    import json

    from producer import config
    from producer.kafka.publisher import QUEUE_FULL
    from producer.ledger.book import Snapshot
    from producer.ledger.containers import ContainersTopic

    rt, out = Runtime(), []
    rt.pods, rt.containers = [pod()], [container()]
    Watch(K8sConfig(), "n", out.append).sync(rt)  # type: ignore[arg-type]
    lines = [json.dumps(r).encode() for r in out]
    pub = FakePublisher()
    topic = ContainersTopic(config.validate({}), pub, "n", {})  # type: ignore[arg-type]
    topic.publish_line(lines[0])
    pub.answer = QUEUE_FULL
    topic.publish_line(lines[1])  # no room: kept, in order
    topic.publish_line(b"{not json")
    assert [k for k, _ in pub.sent] == [out[0]["container_id"].encode()]
    pub.answer = None
    topic.flush_backlog()  # room again: what waited goes, oldest first
    assert [k for k, _ in pub.sent] == [r["container_id"].encode() for r in out]
    pub.sent[0][1](None)
    pub.sent[1][1]("_MSG_TIMED_OUT")
    snap = Snapshot()
    topic.add_to(snap)
    b = snap.balances["containers"]
    assert (b.seen, b.delivered, b.dropped, b.in_flight) == (3, 1, 2, 0)
    assert snap.get("containers", "encode_error") == 1 and snap.get("containers", "delivery_failed") == 1


def test_syscall_counts_carry_the_k8s_the_watcher_reported() -> None:
    """The supervisor's own records (syscall_counts) take `k8s` from the watcher's records, labels as
    k8s.labels allows, and encode with their schema."""
    import json

    from producer import config
    from producer.ledger.containers import ContainersTopic
    from producer.records import codec, syscall_counts

    rt, out = Runtime(), []
    rt.pods, rt.containers = [pod()], [container()]
    Watch(K8sConfig(), "n", out.append).sync(rt)  # type: ignore[arg-type]
    cfg = config.validate({"k8s": {"labels": ["app"]}})
    topic = ContainersTopic(cfg, FakePublisher(), "n", {})  # type: ignore[arg-type]
    for r in out:
        topic.publish_line(json.dumps(r).encode())
    k8s = topic.k8s_of(CID)
    assert k8s is not None and k8s["labels"] == {"app": "web"} and k8s["container"] == "app"
    assert topic.k8s_of("f" * 64) is None and topic.k8s_of(None) is None
    rec = syscall_counts.record(
        host="n",
        boot_id="b",
        cgroup_id=7,
        container_id=CID,
        interval=(1, 2),
        counts=[(0, 3)],
        names={},
        k8s=k8s,
    )
    schema = codec.load_schema("syscall_counts")
    assert codec.decode(codec.Encoder(schema).encode(rec), {schema.fingerprint: schema})[1]["k8s"] == k8s
