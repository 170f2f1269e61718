"""The forwarder's Deployment: off by default; when on, a config the forwarder accepts, its secrets
mounted as files, no privilege, and bad values refused at render time with one line."""

from __future__ import annotations

import math
import uuid
from pathlib import PurePosixPath
from typing import Any

import pytest
import yaml

from producer import config
from tests.helm.chart import CI_VALUES, Rendered, render, render_error
from tests.helm.test_dockerfile import entrypoint

FORWARDER = [CI_VALUES / "forwarder-values.yaml"]
MINIMAL = {"forwarder.enabled": "true", "config.forward.url": "https://siem.example/in"}


def forwarder_config(out: Rendered) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(out.one("ConfigMap", "forwarder")["data"]["config.yaml"])
    return data


def pod(out: Rendered) -> dict[str, Any]:
    spec: dict[str, Any] = out.one("Deployment", "forwarder")["spec"]["template"]["spec"]
    return spec


def test_off_by_default() -> None:
    out = render()
    assert "Deployment" not in out.kinds()
    assert "forward" not in out.collector_config()


def test_the_forwarder_config_is_one_the_forwarder_accepts_with_the_mounted_paths() -> None:
    out = render(FORWARDER)
    cfg = config.validate(forwarder_config(out))
    f = cfg.forward
    assert (f.url, f.format, f.group_id, f.gzip) == (
        "https://splunk.siem:8088/services/collector/event",
        "splunk_hec",
        "ebpf-to-splunk",
        True,
    )
    assert f.auth.token_file == "/etc/ebpf-kafka-producer/forward/hec-token"
    assert f.tls.ca_file == "/etc/ebpf-kafka-producer/forward/ca.crt"
    assert cfg.kafka.security.password_file == "/etc/ebpf-kafka-producer/kafka/password"
    # the collector's own config does not carry the forwarder's section: changing it rolls no collector
    assert "forward" not in out.collector_config()


def test_every_credential_file_of_the_forwarder_is_an_item_of_a_mounted_secret() -> None:
    out = render(FORWARDER)
    cfg = forwarder_config(out)
    paths = [*cfg["forward"]["auth"].values(), *cfg["forward"]["tls"].values()]
    paths += [v for v in cfg["kafka"]["security"].values() if str(v).startswith("/")]
    (container,) = pod(out)["containers"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    vols = {v["name"]: v for v in pod(out)["volumes"]}
    by_dir = {m["mountPath"]: vols[name] for name, m in mounts.items() if "secret" in vols[name]}
    for p in map(PurePosixPath, paths):
        secret = by_dir[str(p.parent)]["secret"]
        assert p.name in [i["path"] for i in secret["items"]]
        assert secret["defaultMode"] == 0o440  # the pod's group (fsGroup) reads it; the pod is not root
    assert all(m["readOnly"] for m in mounts.values())


def test_the_forwarder_pod_has_no_privilege_and_its_own_labels() -> None:
    out = render(FORWARDER)
    p = pod(out)
    assert p["securityContext"]["runAsNonRoot"] is True and p["securityContext"]["fsGroup"] == 65534
    assert "hostPID" not in p and all("hostPath" not in v for v in p["volumes"])
    (c,) = p["containers"]
    sc = c["securityContext"]
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
    dep = out.one("Deployment", "forwarder")
    assert dep["spec"]["replicas"] == 3
    # the DaemonSet's selector (and the collector's Service) must not match a forwarder pod
    ds_selector = out.one("DaemonSet")["spec"]["selector"]["matchLabels"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert not ds_selector.items() <= pod_labels.items()
    assert dep["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_command_probes_and_grace() -> None:
    out = render(FORWARDER)
    (c,) = pod(out)["containers"]
    assert c["command"][:2] == ["ebpf-producer", "forward"]
    assert c["command"][2:] == ["--config", c["volumeMounts"][0]["mountPath"]]
    assert c["command"][0] == entrypoint()[0]
    assert c["ports"] == [{"name": "metrics", "containerPort": 9465, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    drain = config.validate(forwarder_config(out)).forward.drain_timeout_s
    assert pod(out)["terminationGracePeriodSeconds"] == math.ceil(drain) + 10 >= drain + 5


def test_a_forward_listen_port_reaches_the_probes() -> None:
    out = render(sets={**MINIMAL, "config.forward.listen": ":9100"})
    (c,) = pod(out)["containers"]
    assert c["ports"][0]["containerPort"] == 9100


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"forwarder.enabled": "true"}, "config.forward.url: forwarder.enabled needs the receiver's URL"),
        (
            {**MINIMAL, "credentials.forward.files.token_file": "token"},
            "credentials.forward.existingSecret: credentials.forward.files names keys (token_file)",
        ),
        (
            {**MINIMAL, "credentials.forward.existingSecret": "s"},
            "credentials.forward.files: credentials.forward.existingSecret is set but no file is mapped",
        ),
        (
            {
                **MINIMAL,
                "credentials.forward.existingSecret": "s",
                "credentials.forward.files.token_file": "token",
                "config.forward.auth.token_file": "/elsewhere",
            },
            "config.forward.auth.token_file: the chart sets it from credentials.forward.files.token_file",
        ),
        (
            {
                **MINIMAL,
                "credentials.forward.existingSecret": "s",
                "credentials.forward.files.password_file": "pw",
            },
            "config.forward.auth.username: a basic-auth password is mounted but no username is set",
        ),
        (
            {**MINIMAL, "config.forward.listen": "127.0.0.1:9465"},
            'config.forward.listen: "127.0.0.1:9465" must be',
        ),
    ],
)
def test_chart_refuses(sets: dict[str, str], message: str) -> None:
    err = render_error(sets=sets)
    lines = [ln for ln in err.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, err
    assert message in lines[0], err


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"forwarder.replicas": "-1"}, "at '/forwarder/replicas': minimum: got -1, want 0"),
        ({"forwarder.terminationGraceMarginSeconds": "1"}, "at '/forwarder/terminationGraceMarginSeconds'"),
        ({"config.forward.format": "syslog"}, "at '/config/forward/format': value must be one of"),
        (
            {"config.forward.batch.max_eventz": "5"},
            "at '/config/forward/batch': additional properties 'max_eventz'",
        ),
        (
            {"credentials.forward.files.token": "t"},
            "at '/credentials/forward/files': additional properties 'token'",
        ),
    ],
)
def test_values_schema_rejects(sets: dict[str, str], message: str) -> None:
    err = render_error(sets={**MINIMAL, **sets})
    assert message in err, err


@pytest.mark.parametrize(
    "key", ["config.forward.auth.token", "config.forward.auth.password", "config.forward.token"]
)
def test_a_receiver_secret_in_values_never_reaches_a_manifest(key: str) -> None:
    sentinel = f"S3ntinel-{uuid.uuid4().hex}"
    err = render_error(FORWARDER, {key: sentinel})
    assert sentinel not in err and "Error:" in err


def test_no_secret_object_and_no_credential_in_the_forwarder_manifests() -> None:
    out = render(FORWARDER)
    assert "Secret" not in out.kinds()
    (c,) = pod(out)["containers"]
    assert "env" not in c and "envFrom" not in c
