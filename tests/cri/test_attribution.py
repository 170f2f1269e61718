"""Kubernetes attribution end to end: the real kernel, a real broker and a real containerd, pods made
through the CRI as kubelet makes them, the collector configured with the runtime's socket.

What a consumer reads back is checked: every record of a pod's container carries its pod, host
processes carry k8s null, <prefix>.containers holds the containers keyed by id on a compacted topic,
and the misses are counted (k8s_unresolved) when the runtime cannot answer.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from producer.config import KafkaConfig
from producer.kafka import admin
from producer.kernel.procfs import cgroup2_mount
from tests.cri.pods import BUSYBOX, Containerd, CriPods, PodSpec, RunningPod, remove_pod_cgroups
from tests.support.collector import CollectorRunner, http_get, run_cli
from tests.support.kafka import Broker, Message, consume
from tests.support.ledger import assert_identity, counter, final_report

pytestmark = [pytest.mark.kernel, pytest.mark.broker, pytest.mark.cri, pytest.mark.slow]

PROCESS_TYPES = ("process_exec", "process_exit", "process_fork", "file_open", "tcp_connect", "tcp_close")
ALL_TYPES = (*PROCESS_TYPES, "tcp_accept")
CLUSTER = "ekp-test"


def cgroup_id(path: str) -> int:
    mount = cgroup2_mount()
    assert mount is not None
    return os.stat(mount / path.lstrip("/")).st_ino


def k8s_config(containerd: Containerd, **more: Any) -> dict[str, Any]:
    return {
        "events": {"file_open": {"enabled": True, "path_prefixes": {"allow": ["/tmp/ekpattr-"]}}},
        "k8s": {
            "runtime_socket": str(containerd.socket),
            "labels": ["app", "tier"],
            "cluster": CLUSTER,
            "refresh_s": 2,
            **more,
        },
    }


class Listener:
    """A loopback TCP listener of the test (a host process) that accepts and closes."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


def topics(broker: Broker, prefix: str, names: tuple[str, ...] = ALL_TYPES) -> dict[str, list[Message]]:
    return {t: consume(broker.bootstrap, f"{prefix}.{t}", idle_s=2) for t in names}


# The pods of these tests, by name: (workload kind, workload), as their labels and names say.
WORKLOADS = {
    "web-0": ("StatefulSet", "web"),
    "api-5d8f7c9b4-x2x9q": ("Deployment", "api"),
    "brief-7c9f8d6b54-qwzx2": ("Deployment", "brief"),
}


def expected_k8s(pod: RunningPod) -> dict[str, Any]:
    spec = pod.spec
    kind, workload = WORKLOADS[spec.name]
    return {
        "namespace": spec.namespace,
        "pod": spec.name,
        "pod_uid": spec.uid,
        "container": spec.container,
        "image": BUSYBOX,
        "labels": {k: v for k, v in sorted(spec.labels.items()) if k in ("app", "tier")},  # the allow list
        "workload_kind": kind,
        "workload": workload,
        "node": socket.gethostname(),  # the collector's host: no config host, no NODE_NAME here
        "cluster": CLUSTER,
    }


def web_pod(command: tuple[str, ...], **labels: str) -> PodSpec:
    """payments/web-0, a StatefulSet's pod."""
    own = {"app": "web", "statefulset.kubernetes.io/pod-name": "web-0", **labels}
    return PodSpec(name="web-0", namespace="payments", labels=own, command=command)


def api_pod(command: tuple[str, ...]) -> PodSpec:
    """shop/api-..., a Deployment's pod, whose container is named server."""
    return PodSpec(
        name="api-5d8f7c9b4-x2x9q",
        namespace="shop",
        labels={"app": "api", "pod-template-hash": "5d8f7c9b4"},
        container="server",
        command=command,
    )


def shell(marker: str, port: int) -> tuple[str, ...]:
    """A pod's shell: exec a marker, write and read a file, connect to the test's listener, wait."""
    f = f"/tmp/ekpattr-{marker}"
    return (
        "sh",
        "-c",
        f"/bin/true {marker}; echo {marker} > {f}; cat {f} > /dev/null; "
        f"nc 127.0.0.1 {port} < /dev/null; /bin/true done-{marker}; sleep 600",
    )


def test_every_record_of_a_pod_says_which_pod_and_host_processes_say_none(
    containerd: Containerd, cri_pods: CriPods, collector: CollectorRunner, broker: Broker, listener: Listener
) -> None:
    collector.start(k8s_config(containerd))
    m1, m2, host = (f"ekp{uuid.uuid4().hex[:10]}" for _ in range(3))
    web = cri_pods.run(web_pod(shell(m1, listener.port), tier="front", team="pay"))
    api = cri_pods.run(api_pod(shell(m2, listener.port)))
    # the host's own: the same kinds of activity outside any pod
    subprocess.run(["/bin/true", host], check=True)
    Path(f"/tmp/ekpattr-{host}").write_text(host)
    socket.create_connection(("127.0.0.1", listener.port)).close()

    # a container that execs and exits at once, removed as soon as it has (as a quick GC would)
    brief_marker = f"ekp{uuid.uuid4().hex[:10]}"
    brief = cri_pods.run(
        PodSpec(
            name="brief-7c9f8d6b54-qwzx2",
            namespace="batch",
            labels={"app": "brief", "pod-template-hash": "7c9f8d6b54"},
            command=("/bin/true", brief_marker),
        )
    )
    cri_pods.wait_exited(brief.container_id)
    cri_pods.remove(brief)

    deadline = time.monotonic() + 30
    while listener.accepted < 3:  # both pods' and the host's connection
        assert time.monotonic() < deadline, f"{listener.accepted} connections"
        time.sleep(0.1)
    time.sleep(1.5)  # the pods' last execs, and one more listing
    cgroups = {cgroup_id(f"{p.cgroup_parent}/{p.container_id}"): p for p in (web, api)}
    sandboxes = {cgroup_id(f"{p.cgroup_parent}/{p.sandbox_id}"): p for p in (web, api)}
    assert collector.stop() == 0
    got = topics(broker, collector.prefix)
    report = final_report(broker.bootstrap, collector.prefix)

    # every record of the two pods' containers, of every type, carries its pod; the exception is a
    # record the kernel made before the runtime listed the new container (runc's start-up runs in its
    # cgroup): null then, never wrong, and counted as k8s_unresolved
    seen: dict[str, dict[str, int]] = {p.spec.name: {} for p in (web, api)}
    nulls: dict[str, int] = {}
    for t, msgs in got.items():
        for m in msgs:
            v = m.value
            if v["cgroup_id"] in cgroups:
                pod = cgroups[v["cgroup_id"]]
                if v["k8s"] is None:
                    nulls[t] = nulls.get(t, 0) + 1
                else:
                    assert v["k8s"] == expected_k8s(pod), (t, v)
                assert v["container_id"] == pod.container_id
                seen[pod.spec.name][t] = seen[pod.spec.name].get(t, 0) + 1
            elif v["cgroup_id"] in sandboxes:
                # the pause process execs while RunPodSandbox runs, before the runtime answers for its
                # sandbox: null then (and counted), its pod once the runtime knows it
                k = v["k8s"]
                assert k is None or (k["pod"], k["container"]) == (sandboxes[v["cgroup_id"]].spec.name, "POD")
    for t, n in nulls.items():
        assert n <= counter(report, "k8s_unresolved", t), (t, n, seen)
    for name, by_type in seen.items():
        # the shell's exec, its children's execs, forks and exits, its file opens, nc's connection
        assert {"process_exec", "process_fork", "process_exit", "file_open", "tcp_connect"} <= set(by_type), (
            name,
            by_type,
        )
    for marker, pod in ((m1, web), (m2, api)):
        execs = [m.value for m in got["process_exec"] if m.value["argv"] == ["/bin/true", marker]]
        assert len(execs) == 1 and execs[0]["k8s"]["pod"] == pod.spec.name
        opens = [m.value for m in got["file_open"] if m.value["path"] == f"/tmp/ekpattr-{marker}"]
        assert len(opens) == 2 and all(o["k8s"]["container"] == pod.spec.container for o in opens)

    # the host's records: k8s null, and not counted as misses
    host_exec = [m.value for m in got["process_exec"] if m.value["argv"] == ["/bin/true", host]]
    assert len(host_exec) == 1 and host_exec[0]["k8s"] is None
    host_open = [m.value for m in got["file_open"] if m.value["path"] == f"/tmp/ekpattr-{host}"]
    assert host_open and all(o["k8s"] is None for o in host_open)
    accepts = [m.value for m in got["tcp_accept"] if m.value["sport"] == listener.port]
    assert len(accepts) == 3 and all(a["k8s"] is None and a["pid"] == os.getpid() for a in accepts)

    # the brief container: attributed (the cache kept it after its removal), or counted as unresolved
    brief_exec = [m.value for m in got["process_exec"] if m.value["argv"] == ["/bin/true", brief_marker]]
    assert len(brief_exec) == 1
    brief_cg = brief_exec[0]["cgroup_id"]
    for t in PROCESS_TYPES:
        mine = [m.value for m in got[t] if m.value["cgroup_id"] == brief_cg]
        nulls = sum(1 for v in mine if v["k8s"] is None)
        for v in mine:
            assert v["k8s"] is None or v["k8s"] == expected_k8s(brief), v
        assert nulls <= counter(report, "k8s_unresolved", t), (t, nulls)
    print(
        "brief container:",
        {t: sum(1 for m in got[t] if m.value["cgroup_id"] == brief_cg) for t in PROCESS_TYPES},
        "unresolved:",
        {t: counter(report, "k8s_unresolved", t) for t in PROCESS_TYPES},
    )

    # <prefix>.containers: keyed by container id, on a compacted topic, every pod label
    records = consume(broker.bootstrap, f"{collector.prefix}.containers", idle_s=2)
    by_key: dict[str, list[dict[str, Any]]] = {}
    for m in records:
        assert m.key == m.value["container_id"].encode()
        by_key.setdefault(m.value["container_id"], []).append(m.value)
    for pod in (web, api):
        (rec,) = by_key[pod.container_id]
        # first seen when its cgroup appears: created (before StartContainer returned) or running
        assert rec["state"] in ("created", "running"), rec
        assert (rec["event"], rec["kind"], rec["sandbox_id"]) == ("seen", "container", pod.sandbox_id)
        assert rec["cgroup_id"] == next(cg for cg, p in cgroups.items() if p is pod)
        assert rec["k8s"]["labels"] == {
            **pod.spec.labels,
            "io.kubernetes.pod.name": pod.spec.name,
            "io.kubernetes.pod.namespace": pod.spec.namespace,
            "io.kubernetes.pod.uid": pod.spec.uid,
        }
        assert {k: v for k, v in rec["k8s"].items() if k != "labels"} == {
            k: v for k, v in expected_k8s(pod).items() if k != "labels"
        }
        assert rec["runtime"].startswith("containerd ") and rec["image_ref"].startswith("sha256:")
        assert by_key[pod.sandbox_id][-1]["kind"] == "sandbox"
    assert by_key[brief.container_id][-1]["event"] == "gone"
    kcfg = KafkaConfig(bootstrap_servers=broker.bootstrap, topic_prefix=collector.prefix)
    assert admin.topic_config(kcfg, kcfg.containers_topic)["cleanup.policy"] == "compact"

    for t in (*ALL_TYPES, "containers"):
        assert_identity(report, t)
    assert counter(report, "seen", "containers") == len(records)


def test_runtime_stopped_mid_run(
    containerd: Containerd, cri_pods: CriPods, collector: CollectorRunner, broker: Broker
) -> None:
    collector.start(k8s_config(containerd, refresh_s=1))
    tick = f"ekp{uuid.uuid4().hex[:10]}"
    a = cri_pods.run(web_pod(("sh", "-c", f"while :; do /bin/true {tick}; sleep 0.2; done")))
    time.sleep(2)
    containerd.stop()
    stopped_at = datetime.now(UTC)  # fastavro gives timestamp-micros as aware datetimes
    # a pod's cgroup the runtime cannot be asked about: its records are misses
    mount = cgroup2_mount()
    assert mount is not None
    uid = str(uuid.uuid4())
    orphan = mount / f"kubepods/besteffort/pod{uid}/{uuid.uuid4().hex * 2}"
    orphan.mkdir(parents=True)
    lost = f"ekp{uuid.uuid4().hex[:10]}"
    try:
        for _ in range(5):
            subprocess.run(
                ["sh", "-c", f"echo $$ > {orphan}/cgroup.procs && exec /bin/true {lost}"], check=True
            )
        time.sleep(2)
        port = collector.metrics_port()
        _, page = http_get(port, "/metrics")
    finally:
        containerd.up()
    # every reader's resolver has found the runtime again (gRPC reconnects on its own backoff)
    readers = len(collector.log_events("reader_started"))
    deadline = time.monotonic() + 30
    while len(collector.log_events("k8s_runtime_available")) < readers:
        assert time.monotonic() < deadline, "the resolvers did not find the runtime again"
        time.sleep(0.2)
    back = f"ekp{uuid.uuid4().hex[:10]}"
    # the marker a moment after the container starts: a record made before the resolver's first answer
    # for a new container is null and counted (the first test shows that); this one asks for the answer
    b = cri_pods.run(api_pod(("sh", "-c", f"sleep 1; /bin/true {back}; sleep 600")))
    time.sleep(3)
    assert collector.stop() == 0
    remove_pod_cgroups([uid])
    got = topics(broker, collector.prefix, ("process_exec",))["process_exec"]
    report = final_report(broker.bootstrap, collector.prefix)

    ticks = [m.value for m in got if m.value["argv"] == ["/bin/true", tick]]
    during = [v for v in ticks if v["timestamp"] > stopped_at]
    assert len(during) >= 10, len(during)  # the collector kept publishing while the runtime was down
    assert all(v["k8s"] == expected_k8s(a) for v in ticks)  # what was known stays known
    orphans = [m.value for m in got if m.value["argv"] == ["/bin/true", lost]]
    assert len(orphans) == 5 and all(v["k8s"] is None for v in orphans)
    assert counter(report, "k8s_unresolved") >= 5
    assert 'reason="k8s_unresolved"' in page and 'event_type="process_exec"' in page
    resumed = [m.value for m in got if m.value["argv"] == ["/bin/true", back]]
    assert len(resumed) == 1 and resumed[0]["k8s"] == expected_k8s(b)
    assert_identity(report)
    log = collector.log()
    assert "k8s_runtime_unavailable" in log and "k8s_runtime_available" in log


def test_runtime_unreachable_at_start(
    containerd: Containerd, cri_pods: CriPods, collector: CollectorRunner, broker: Broker, tmp_path: Path
) -> None:
    """No runtime on the configured socket: the collector runs, says so once, and every record of a
    pod's container goes out at once with k8s null, counted as k8s_unresolved; the host's are not misses."""
    collector.start(k8s_config(containerd, runtime_socket=str(tmp_path / "no-such.sock")))
    marker, host = (f"ekp{uuid.uuid4().hex[:10]}" for _ in range(2))
    pod = cri_pods.run(web_pod(("sh", "-c", f"/bin/true {marker}; sleep 600")))
    subprocess.run(["/bin/true", host], check=True)
    time.sleep(2)
    assert collector.stop() == 0
    got = topics(broker, collector.prefix, ("process_exec",))["process_exec"]
    report = final_report(broker.bootstrap, collector.prefix)

    (mine,) = [m.value for m in got if m.value["argv"] == ["/bin/true", marker]]
    assert mine["k8s"] is None and mine["container_id"] == pod.container_id
    (theirs,) = [m.value for m in got if m.value["argv"] == ["/bin/true", host]]
    assert theirs["k8s"] is None
    pod_records = sum(
        1 for m in got if m.value["cgroup_id"] == cgroup_id(f"{pod.cgroup_parent}/{pod.container_id}")
    )
    assert counter(report, "k8s_unresolved") >= pod_records >= 2  # the shell and the marker, at least
    assert_identity(report)
    log = collector.log()
    assert "k8s_runtime_unavailable" in log and "no-such.sock" in log
    assert counter(report, "seen", "containers") == 0


def test_check_names_the_socket_it_tried(containerd: Containerd, broker: Broker, tmp_path: Path) -> None:
    def check(sock: str) -> subprocess.CompletedProcess[str]:
        cfg = tmp_path / "config.yaml"
        cfg.write_text(
            f"kafka: {{bootstrap_servers: '{broker.bootstrap}', topic_prefix: t{uuid.uuid4().hex[:12]}}}\n"
            f"k8s: {{runtime_socket: '{sock}'}}\n"
        )
        return run_cli(["check", "--config", str(cfg)])

    ok = check(str(containerd.socket))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    line = next(ln for ln in ok.stdout.splitlines() if "k8s:" in ln)
    assert line.startswith("ok    k8s: containerd ") and str(containerd.socket) in line

    missing = check(str(tmp_path / "no-such.sock"))
    assert missing.returncode == 0, missing.stdout + missing.stderr  # a warning, not a failure
    line = next(ln for ln in missing.stdout.splitlines() if "k8s:" in ln)
    assert line.startswith("WARN  k8s: no CRI runtime answered (tried ") and "no-such.sock" in line
    assert "criSocket" in line and "k8s_unresolved" in line
