"""The pod's privileges, host mounts and credential handling, as rendered."""

from __future__ import annotations

import uuid
from pathlib import Path, PurePosixPath

import pytest
import yaml

from producer.ops import preflight
from tests.helm.chart import CHART, CI_VALUES, Rendered, render, render_error
from tests.helm.test_dockerfile import entrypoint
from tests.helm.test_render import CASES

VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
TLS_SASL = [CI_VALUES / "tls-sasl-values.yaml"]
# Where the collector and BCC look, inside the container; the build links under /lib/modules are absolute.
HOST_TARGETS = {
    "host-tracefs": str(preflight.TRACEFS_CANDIDATES[0]),
    "host-modules": "/lib/modules",
    "host-usrsrc": "/usr/src",
    "host-cgroup": "/sys/fs/cgroup",
    "host-bpffs": "/sys/fs/bpf",
}


def test_least_privilege_is_the_default_and_drops_everything_else() -> None:
    sc = render().container["securityContext"]
    assert sc["privileged"] is False
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    # Measured: tests/integration/test_least_privilege.py runs the collector with exactly this set.
    assert sc["capabilities"]["add"] == ["BPF", "PERFMON", "IPC_LOCK"]
    assert sc["runAsUser"] == 0
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}


def test_extra_capabilities_are_added_once() -> None:
    add = render(sets={"leastPrivilege.extraCapabilities": "{SYS_RESOURCE,BPF}"}).container["securityContext"]
    assert add["capabilities"]["add"] == ["BPF", "PERFMON", "IPC_LOCK", "SYS_RESOURCE"]


def test_privileged_mode() -> None:
    sc = render([CI_VALUES / "privileged-values.yaml"]).container["securityContext"]
    assert sc["privileged"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert "capabilities" not in sc and "allowPrivilegeEscalation" not in sc


@pytest.mark.parametrize("case", [c for c in CASES if c != "privileged"])
def test_no_privileged_container_outside_privileged_mode(case: str) -> None:
    out = render(CASES[case])
    assert "privileged: true" not in out.text
    assert out.container["securityContext"]["privileged"] is False


@pytest.mark.parametrize("case", CASES)
def test_pod_runs_on_every_node_with_host_pids_and_no_api_token(case: str) -> None:
    out = render(CASES[case])
    pod = out.pod
    assert pod["hostPID"] is True
    assert pod["automountServiceAccountToken"] is False
    assert out.one("ServiceAccount")["automountServiceAccountToken"] is False
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert out.one("DaemonSet")["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1},
    }
    assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in out.container[
        "env"
    ]


def test_priority_class_and_resources() -> None:
    out = render([CI_VALUES / "least-privilege-values.yaml"])
    assert out.pod["priorityClassName"] == "system-node-critical"
    assert "priorityClassName" not in render().pod
    assert out.container["resources"] == VALUES["resources"]
    assert "cpu" not in out.container["resources"]["limits"]


def test_host_paths_are_mounted_read_only_where_the_collector_looks() -> None:
    mounts = render().mounts()
    host = {
        name: m
        for name, m in mounts.items()
        if "hostPath" in m["volume"] and name not in ("cri-socket", "spool")
    }
    assert {n: m["mount"]["mountPath"] for n, m in host.items()} == HOST_TARGETS
    for name, m in host.items():
        assert m["mount"]["readOnly"] is True, name
        assert m["volume"]["hostPath"]["type"] == "Directory", name
    # the only writable mounts: BCC's kheaders fallback under $TMPDIR, and the spool
    writable = {n for n, m in mounts.items() if not m["mount"].get("readOnly")}
    assert writable == {"tmp", "spool"}
    assert mounts["tmp"]["mount"]["mountPath"] == "/tmp"
    assert "emptyDir" in mounts["tmp"]["volume"]


def test_the_spool_is_a_host_directory_the_config_points_at() -> None:
    out = render()
    spool = out.mounts()["spool"]
    # a hostPath, so that what an outage left survives a rollout or an eviction of the pod
    assert spool["volume"]["hostPath"] == {
        "path": "/var/lib/ebpf-kafka-producer",
        "type": "DirectoryOrCreate",
    }
    assert out.collector_config()["spool"]["dir"] == spool["mount"]["mountPath"]
    # an emptyDir on request; none at all when the spool is off
    empty = render(sets={"spool.hostPath": ""}).mounts()["spool"]["volume"]
    assert empty["emptyDir"] == {"sizeLimit": "2Gi"}
    off = render(sets={"config.spool.enabled": "false"})
    assert "spool" not in off.mounts() and "dir" not in off.collector_config().get("spool", {})


def test_a_host_mount_can_be_left_out_and_tracefs_moved() -> None:
    out = render(sets={"hostMounts.bpffs": "", "hostMounts.tracefs": "/sys/kernel/debug/tracing"})
    mounts = out.mounts()
    assert "host-bpffs" not in mounts
    assert mounts["host-tracefs"]["volume"]["hostPath"]["path"] == "/sys/kernel/debug/tracing"
    assert mounts["host-tracefs"]["mount"]["mountPath"] == "/sys/kernel/tracing"


def test_the_cri_socket_is_mounted_read_only_and_the_collector_pointed_at_it() -> None:
    out = render()
    m = out.mounts()["cri-socket"]
    assert m["volume"]["hostPath"] == {"path": VALUES["criSocket"], "type": "Socket"}
    assert m["mount"] == {"name": "cri-socket", "mountPath": VALUES["criSocket"], "readOnly": True}
    assert out.collector_config()["k8s"]["runtime_socket"] == VALUES["criSocket"]
    # and no API access is needed for it
    assert out.pod["automountServiceAccountToken"] is False
    assert not {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"} & set(out.kinds())


def test_cri_o_socket_cluster_and_label_allow_list_from_values() -> None:
    out = render(
        sets={
            "criSocket": "/run/crio/crio.sock",
            "config.k8s.cluster": "prod-eu",
            "config.k8s.labels[0]": "app.kubernetes.io/*",
        }
    )
    assert out.mounts()["cri-socket"]["volume"]["hostPath"]["path"] == "/run/crio/crio.sock"
    assert out.collector_config()["k8s"] == {
        "cluster": "prod-eu",
        "labels": ["app.kubernetes.io/*"],
        "runtime_socket": "/run/crio/crio.sock",
    }


@pytest.mark.parametrize("sets", [{"criSocket": ""}, {"config.k8s.enabled": "false"}])
def test_no_cri_mount_without_attribution(sets: dict[str, str]) -> None:
    out = render(sets=sets)
    assert "cri-socket" not in out.mounts()
    assert "runtime_socket" not in out.collector_config().get("k8s", {})


@pytest.mark.parametrize("case", CASES)
def test_the_chart_creates_no_secret_and_no_credential_env(case: str) -> None:
    out = render(CASES[case])
    assert "Secret" not in out.kinds()
    assert "envFrom" not in out.container
    for env in out.container["env"]:
        assert "secretKeyRef" not in env.get("valueFrom", {}), env


@pytest.mark.parametrize("case", ["tls-sasl", "mtls"])
def test_every_credential_file_in_the_config_is_an_item_of_a_mounted_secret(case: str) -> None:
    out = render(CASES[case])
    cfg = out.collector_config()
    paths = [v for v in cfg["kafka"]["security"].values() if str(v).startswith("/")]
    paths += [v for v in cfg.get("schema_registry", {}).values() if str(v).startswith("/")]
    assert paths
    secret_mounts = {m["mount"]["mountPath"]: m for m in out.mounts().values() if "secret" in m["volume"]}
    for p in map(PurePosixPath, paths):
        m = secret_mounts[str(p.parent)]
        assert m["mount"]["readOnly"] is True
        secret = m["volume"]["secret"]
        assert secret["defaultMode"] == 0o400
        assert p.name in [i["path"] for i in secret["items"]]


def test_tls_sasl_points_the_collector_at_the_mounted_files() -> None:
    cfg = render(TLS_SASL).collector_config()
    assert cfg["kafka"]["security"] == {
        "protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "username": "ebpf-producer",
        "verify_hostname": True,
        "ca_file": "/etc/ebpf-kafka-producer/kafka/ca.crt",
        "password_file": "/etc/ebpf-kafka-producer/kafka/password",
    }
    assert cfg["schema_registry"] == {
        "url": "https://schema-registry.kafka:8081",
        "username": "ebpf-producer",
        "ca_file": "/etc/ebpf-kafka-producer/schema-registry/ca.crt",
        "password_file": "/etc/ebpf-kafka-producer/schema-registry/password",
    }
    secrets = {
        m["volume"]["secret"]["secretName"]
        for m in render(TLS_SASL).mounts().values()
        if "secret" in m["volume"]
    }
    assert secrets == {"ebpf-producer-kafka", "ebpf-producer-registry"}


def test_without_credentials_no_security_section_is_rendered() -> None:
    # The collector rejects unknown keys: an empty kafka.security must not appear by default.
    cfg = render().collector_config()
    assert "security" not in cfg["kafka"] and "schema_registry" not in cfg


# Every place a user might type a password into values, including keys the schema does not know.
SENTINEL_KEYS = [
    r"config.kafka.client.sasl\.password",
    r"config.kafka.client.ssl\.key\.password",
    r"config.kafka.client.ssl\.keystore\.password",
    r"config.kafka.client.ssl\.key\.pem",
    r"config.kafka.client.sasl\.oauthbearer\.client\.secret",
    "config.kafka.security.password",
    "config.schema_registry.password",
    "credentials.kafka.password",
    "kafkaPassword",
]


@pytest.mark.parametrize("key", SENTINEL_KEYS)
def test_a_password_in_values_never_reaches_a_manifest(key: str) -> None:
    sentinel = f"S3ntinel-{uuid.uuid4().hex}"
    # On top of a case that renders, so the refusal is the sentinel's doing.
    err = render_error(TLS_SASL, {key: sentinel})
    assert sentinel not in err
    assert "Error:" in err


def test_the_credential_refusal_names_the_key_and_the_fix() -> None:
    err = render_error(TLS_SASL, {r"config.kafka.client.sasl\.password": "x"})
    assert (
        "config.kafka.client.sasl.password: credentials must not be in values (they would be stored in a "
        "ConfigMap); put the file in the Secret named by credentials.kafka.existingSecret"
    ) in err


def test_sentinel_keys_are_accepted_without_a_password_shape() -> None:
    # The guard looks at key names, so harmless neighbours of those keys still render.
    out = render(TLS_SASL, {r"config.kafka.client.ssl\.endpoint\.identification\.algorithm": "https"})
    assert out.collector_config()["kafka"]["client"] == {"ssl.endpoint.identification.algorithm": "https"}


def _config_mount(out: Rendered) -> str:
    (m,) = [m["mount"] for m in out.mounts().values() if "configMap" in m["volume"]]
    assert m["readOnly"] is True
    return str(Path(m["mountPath"]))


def test_config_is_mounted_where_the_image_entrypoint_reads_it() -> None:
    ep = entrypoint()
    assert _config_mount(render()) == ep[ep.index("--config") + 1]
    assert "command" not in render().container and "args" not in render().container
