"""Workload from the labels and annotations kubelet passes to the CRI, as real controllers set them."""

from __future__ import annotations

from datetime import UTC, datetime
from types import MappingProxyType

import pytest

from producer.k8s.model import Pod, PodState
from producer.k8s.workload import Workload, WorkloadKind, workload_of, workload_of_pod

UID = "6f0c1d2e-3b4a-4c5d-8e9f-a0b1c2d3e4f5"
# kubelet puts these on every sandbox, next to the pod's own labels and annotations
KUBELET_LABELS = {"io.kubernetes.pod.uid": UID}
API_ANNOTATIONS = {"kubernetes.io/config.source": "api", "kubernetes.io/config.seen": "2026-11-27T17:00:00Z"}


def labels(name: str, namespace: str, **own: str) -> dict[str, str]:
    return {
        **own,
        **KUBELET_LABELS,
        "io.kubernetes.pod.name": name,
        "io.kubernetes.pod.namespace": namespace,
    }


@pytest.mark.parametrize(
    ("pod", "own", "expected"),
    [
        # kube-system's DNS, a Deployment
        ("coredns-5d78c9869d-8x7kq", {"k8s-app": "kube-dns", "pod-template-hash": "5d78c9869d"}, "coredns"),
        # a Deployment whose name has dashes of its own
        (
            "api-gateway-7c9f8d6b54-qwzx2",
            {"app.kubernetes.io/name": "api-gateway", "pod-template-hash": "7c9f8d6b54"},
            "api-gateway",
        ),
        ("api-5d8f7c9b4-x2x9q", {"app": "api", "pod-template-hash": "5d8f7c9b4"}, "api"),
    ],
)
def test_replicaset_pods_belong_to_their_deployment(pod: str, own: dict[str, str], expected: str) -> None:
    w = workload_of(pod, labels(pod, "shop", **own), API_ANNOTATIONS)
    assert w == Workload(WorkloadKind.DEPLOYMENT, expected)


def test_a_truncated_replicaset_pod_name_gives_no_guess() -> None:
    # generateName is cut at 58 characters before the 5 random ones: the hash is no longer in the name
    deployment = "payments-reconciliation-worker-for-the-eu-central-region"
    rs = f"{deployment}-6b8d9f7c5d"
    pod = f"{rs}-"[:58] + "k2x7q"
    assert workload_of(pod, labels(pod, "payments", **{"pod-template-hash": "6b8d9f7c5d"}), {}) is None


def test_statefulset_pods() -> None:
    own = {
        "app": "web",
        "controller-revision-hash": "web-6d8f7c9b4",
        "statefulset.kubernetes.io/pod-name": "web-0",
        "apps.kubernetes.io/pod-index": "0",
    }
    assert workload_of("web-0", labels("web-0", "payments", **own), API_ANNOTATIONS) == Workload(
        WorkloadKind.STATEFULSET, "web"
    )
    own12 = {**own, "statefulset.kubernetes.io/pod-name": "kafka-broker-12"}
    assert workload_of("kafka-broker-12", own12, {}) == Workload(WorkloadKind.STATEFULSET, "kafka-broker")


def test_daemonset_pods_with_and_without_pod_template_generation() -> None:
    own = {"controller-revision-hash": "5d8f7c9b4", "k8s-app": "kube-proxy", "pod-template-generation": "1"}
    expected = Workload(WorkloadKind.DAEMONSET, "kube-proxy")
    assert workload_of("kube-proxy-x7k2p", labels("kube-proxy-x7k2p", "kube-system", **own), {}) == expected
    newer = {k: v for k, v in own.items() if k != "pod-template-generation"}
    assert workload_of("kube-proxy-x7k2p", newer, {}) == expected
    # a name that is not <daemonset>-<5 random>, or may have been truncated, is not guessed
    assert workload_of("kube-proxy-abc", own, {}) is None
    long_ds = "fluent-bit-forwarder-for-the-payments-team-eu-central-1-a-canary"
    truncated = f"{long_ds}-"[:58] + "x7k2p"  # ...-central-1-a-x7k2p: looks like a DaemonSet "...-1-a"
    assert workload_of(truncated, own, {}) is None


def test_job_pods_old_and_new_labels() -> None:
    new = {
        "batch.kubernetes.io/controller-uid": UID,
        "batch.kubernetes.io/job-name": "db-migrate",
        "controller-uid": UID,
        "job-name": "db-migrate",
    }
    assert workload_of("db-migrate-xk2lm", new, {}) == Workload(WorkloadKind.JOB, "db-migrate")
    old = {"controller-uid": UID, "job-name": "db-migrate"}
    assert workload_of("db-migrate-xk2lm", old, {}) == Workload(WorkloadKind.JOB, "db-migrate")
    # an indexed Job's pods: <job>-<index>-<random>
    indexed = {**new, "batch.kubernetes.io/job-completion-index": "3"}
    assert workload_of("db-migrate-3-xk2lm", indexed, {}) == Workload(WorkloadKind.JOB, "db-migrate")


def test_cronjob_jobs_are_named_after_their_scheduled_minute() -> None:
    # the CronJob controller names each Job <cronjob>-<scheduled time in minutes since the epoch>
    minute = int(datetime(2026, 11, 27, 17, 0, tzinfo=UTC).timestamp()) // 60
    job = f"nightly-report-{minute}"
    own = {"batch.kubernetes.io/job-name": job, "job-name": job, "controller-uid": UID}
    assert workload_of(f"{job}-5r7tq", own, {}) == Workload(WorkloadKind.CRONJOB, "nightly-report")
    # a Job named with a short number is someone's own Job, not a CronJob's
    own = {"job-name": "backup-2024"}
    assert workload_of("backup-2024-5r7tq", own, {}) == Workload(WorkloadKind.JOB, "backup-2024")


def test_static_pods_by_kubelets_config_source() -> None:
    annotations = {
        "kubernetes.io/config.source": "file",
        "kubernetes.io/config.hash": "9c4f2e1d8b7a6f5e4d3c2b1a0f9e8d7c",
        "kubernetes.io/config.seen": "2026-11-27T16:59:12.123456789Z",
        "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": "10.0.0.10:6443",
    }
    pod = "kube-apiserver-node-1"
    own = labels(pod, "kube-system", component="kube-apiserver", tier="control-plane")
    assert workload_of(pod, own, annotations, node_name="node-1") == Workload(
        WorkloadKind.STATIC_POD, "kube-apiserver"
    )
    assert workload_of(pod, own, annotations) == Workload(WorkloadKind.STATIC_POD, pod)
    assert workload_of(pod, own, annotations, node_name="node-2") == Workload(WorkloadKind.STATIC_POD, pod)


@pytest.mark.parametrize(
    ("pod", "own"),
    [
        ("debug", {"run": "debug"}),  # kubectl run
        ("rs-only-x7k2p", {"app": "legacy"}),  # a bare ReplicaSet leaves no label
        ("etcd-backup", {}),
    ],
)
def test_bare_pods_and_unknown_controllers_have_none(pod: str, own: dict[str, str]) -> None:
    assert workload_of(pod, labels(pod, "default", **own), API_ANNOTATIONS) is None


def test_from_a_pod_value() -> None:
    pod = Pod(
        id="f" * 64,
        uid=UID,
        name="api-5d8f7c9b4-x2x9q",
        namespace="shop",
        attempt=0,
        state=PodState.READY,
        created_at_ns=1,
        labels=MappingProxyType(labels("api-5d8f7c9b4-x2x9q", "shop", **{"pod-template-hash": "5d8f7c9b4"})),
        annotations=MappingProxyType(API_ANNOTATIONS),
    )
    assert workload_of_pod(pod) == Workload(WorkloadKind.DEPLOYMENT, "api")
