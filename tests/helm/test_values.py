"""Bad values fail at render time with one clear line; good ones give a config the collector accepts."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from pydantic import BaseModel

from producer import config
from tests.helm.chart import CHART, CI_VALUES, render, render_error
from tests.helm.test_render import CASES

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
TLS_SASL = [CI_VALUES / "tls-sasl-values.yaml"]
# Config keys another branch adds to the collector; the chart already renders them.
PENDING = {
    ("kafka", "security"): {
        "protocol",
        "ca_file",
        "cert_file",
        "key_file",
        "key_password_file",
        "verify_hostname",
        "sasl_mechanism",
        "username",
        "password_file",
    },
    ("schema_registry",): {"url", "username", "password_file", "ca_file"},
}


def collector_validate(data: dict[str, Any]) -> config.Config:
    """producer.config.validate, minus the sections this collector does not have yet."""
    data = copy.deepcopy(data)
    if "security" not in config.KafkaConfig.model_fields:
        data.get("kafka", {}).pop("security", None)
    if "schema_registry" not in config.Config.model_fields:
        data.pop("schema_registry", None)
    return config.validate(data)


@pytest.mark.parametrize("case", CASES)
def test_the_rendered_config_is_one_the_collector_accepts(case: str) -> None:
    cfg = collector_validate(render(CASES[case]).collector_config())
    assert cfg.host == ""  # each pod's NODE_NAME wins


@pytest.mark.parametrize(
    ("values", "sets", "timeout"),
    [
        ([], {}, 20.0),
        ([CI_VALUES / "least-privilege-values.yaml"], {}, 12.5),  # a fraction (--set would make it a string)
        ([], {"config.shutdown.timeout_s": "600"}, 600.0),
        ([], {"config.shutdown": "null"}, None),
    ],
)
def test_termination_grace_covers_the_collectors_shutdown(
    values: list[Any], sets: dict[str, str], timeout: float | None
) -> None:
    out = render(values, sets)
    cfg = collector_validate(out.collector_config())
    if timeout is None:  # section removed: the collector's own default applies, and the chart must know it
        assert "shutdown" not in out.collector_config()
        timeout = config.ShutdownConfig().timeout_s
    assert cfg.shutdown.timeout_s == timeout
    grace = out.pod["terminationGracePeriodSeconds"]
    assert grace == math.ceil(timeout) + 10
    assert grace >= timeout + 5  # the collector's own bound: exits within timeout_s + 5 s


@pytest.mark.parametrize("sets", [{}, {"config.metrics.listen": ":9100"}, {"config.metrics": "null"}])
def test_probes_and_service_use_the_port_the_collector_listens_on(sets: dict[str, str]) -> None:
    out = render(sets=sets)
    _, port = config.parse_listen(collector_validate(out.collector_config()).metrics.listen)
    (cport,) = out.container["ports"]
    assert cport == {"name": "metrics", "containerPort": port, "protocol": "TCP"}
    assert out.one("Service")["spec"]["ports"][0]["port"] == port
    c = out.container
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}


# helm's schema check: the path of the bad value and what was expected
SCHEMA_ERRORS = [
    ({"securityMode": "root"}, "at '/securityMode': value must be one of 'leastPrivilege', 'privileged'"),
    ({"config.shutdown.timeout_s": "abc"}, "at '/config/shutdown/timeout_s': got string, want number"),
    (
        {"config.readers.perf_pagez": "3"},
        "at '/config/readers': additional properties 'perf_pagez' not allowed",
    ),
    ({"config.log.level": "verbose"}, "at '/config/log/level': value must be one of 'debug'"),
    (
        {"leastPrivilege.capabilities": "{CAP_BPF}"},
        "at '/leastPrivilege/capabilities/0': value must be one of",
    ),
    ({"terminationGraceMarginSeconds": "2"}, "at '/terminationGraceMarginSeconds': minimum: got 2, want 5"),
    (
        {"updateStrategy.rollingUpdate.maxSurge": "1"},
        "at '/updateStrategy/rollingUpdate/maxSurge': value must be 0",
    ),
    ({"image.digest": "latest"}, "at '/image/digest'"),
    ({"hostMounts.tracefs": "sys/kernel/tracing"}, "at '/hostMounts/tracefs'"),
    ({"criSocket": "run/containerd/containerd.sock"}, "at '/criSocket'"),
    ({"config.k8s.labels[0]": "app label"}, "at '/config/k8s/labels/0'"),
    ({"config.k8s.retain_s": "10"}, "at '/config/k8s/retain_s': minimum: got 10, want 60"),
]


@pytest.mark.parametrize(("sets", "message"), SCHEMA_ERRORS)
def test_values_schema_rejects(sets: dict[str, str], message: str) -> None:
    err = render_error(sets=sets)
    assert "values don't meet the specifications of the schema" in err
    assert message in err, err


# the chart's own checks: one line naming the value and the fix
TEMPLATE_ERRORS = [
    ([], {"config.host": "node-1"}, "config.host: leave it empty: each pod stamps its own node's name"),
    (
        [],
        {"config.metrics.listen": "127.0.0.1:9464"},
        'config.metrics.listen: "127.0.0.1:9464" must be 0.0.0.0:PORT',
    ),
    ([], {"config.metrics.listen": ""}, 'config.metrics.listen: "" must be 0.0.0.0:PORT'),
    ([], {"config.metrics.listen": ":0"}, "config.metrics.listen: port 0 must be 1-65535"),
    ([], {"leastPrivilege.capabilities": "{PERFMON}"}, "leastPrivilege.capabilities: must include BPF"),
    (
        [],
        {"monitoring.serviceMonitor.enabled": "true", "monitoring.service.enabled": "false"},
        "monitoring.serviceMonitor.enabled: needs monitoring.service.enabled",
    ),
    (
        [],
        {"credentials.kafka.files.ca_file": "ca.crt"},
        "credentials.kafka.existingSecret: credentials.kafka.files names keys (ca_file) but no Secret",
    ),
    (
        [],
        {"credentials.kafka.existingSecret": "s"},
        "credentials.kafka.files: credentials.kafka.existingSecret is set but no file is mapped from it",
    ),
    (
        TLS_SASL,
        {"credentials.kafka.files.password_file": ""},
        "credentials.kafka.files.password_file: protocol SASL_SSL needs the SASL password",
    ),
    (
        TLS_SASL,
        {"config.kafka.security.username": ""},
        "config.kafka.security.username: protocol SASL_SSL needs a SASL username",
    ),
    (
        TLS_SASL,
        {"config.kafka.security.protocol": "SASL_PLAINTEXT"},
        "config.kafka.security.ca_file: TLS material is mounted but config.kafka.security.protocol is "
        "SASL_PLAINTEXT",
    ),
    (
        TLS_SASL,
        {"config.kafka.security.protocol": "SSL"},
        "config.kafka.security.password_file: a SASL password is mounted but "
        "config.kafka.security.protocol is SSL",
    ),
    (
        TLS_SASL,
        {"credentials.kafka.files.cert_file": "tls.crt"},
        "credentials.kafka.files: cert_file and key_file go together",
    ),
    (
        TLS_SASL,
        {"config.kafka.security.ca_file": "/etc/ssl/ca.pem"},
        "config.kafka.security.ca_file: the chart sets it from credentials.kafka.files.ca_file; remove it",
    ),
    (
        TLS_SASL,
        {"config.schema_registry.username": ""},
        "config.schema_registry.username: a schema registry password file is mounted but no username",
    ),
    (
        [],
        {"config.schema_registry.username": "u"},
        "config.schema_registry.url: schema registry settings are given but no url",
    ),
    (
        [],
        {"config.k8s.runtime_socket": "/run/containerd/containerd.sock"},
        "config.k8s.runtime_socket: the chart sets it from criSocket",
    ),
]


@pytest.mark.parametrize(("values", "sets", "message"), TEMPLATE_ERRORS)
def test_chart_refuses(values: list[Any], sets: dict[str, str], message: str) -> None:
    err = render_error(values, sets)
    lines = [ln for ln in err.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, err
    assert message in lines[0], err


def _fields(cls: type[BaseModel]) -> dict[str, Any]:
    return dict(cls.model_fields)


def _walk(cls: type[BaseModel], node: dict[str, Any], path: tuple[str, ...]) -> None:
    """The schema's keys for one config section are the model's fields (plus pending keys)."""
    assert node["additionalProperties"] is False, path  # a typo must fail at render time
    props = node["properties"]
    fields = _fields(cls)
    for pending_path, keys in PENDING.items():
        if pending_path[:-1] == path and pending_path[-1] not in fields:
            assert set(props[pending_path[-1]]["properties"]) == keys
            props = {k: v for k, v in props.items() if k != pending_path[-1]}
    assert set(props) == set(fields), path
    scalar = {bool: "boolean", int: "integer", float: "number", str: "string"}
    for name, f in fields.items():
        default = f.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            _walk(type(default), props[name], (*path, name))
        elif type(default) in scalar and "type" in props[name]:
            assert props[name]["type"] == scalar[type(default)], (*path, name)
    if path == ("kafka",) and "security" in fields:  # after the merge: the pending keys must have landed
        assert set(props["security"]["properties"]) == PENDING[("kafka", "security")]


def test_values_schema_knows_every_collector_key() -> None:
    _walk(config.Config, SCHEMA["properties"]["config"], ())
