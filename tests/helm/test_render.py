"""helm lint, and every manifest of every values case valid against the Kubernetes OpenAPI schemas.

kubernetes-validate carries the schemas offline; strict mode rejects unknown
fields, so a misspelt key (hostPid, readonly) is an error here, not a field the
API server would silently drop.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version

from tests.helm.chart import CHART, CI_VALUES, helm, render

CASES: dict[str, list[Path]] = {
    "defaults": [],
    "privileged": [CI_VALUES / "privileged-values.yaml"],
    "least-privilege": [CI_VALUES / "least-privilege-values.yaml"],
    "tls-sasl": [CI_VALUES / "tls-sasl-values.yaml"],
    "mtls": [CI_VALUES / "mtls-values.yaml"],
    "monitoring": [CI_VALUES / "monitoring-values.yaml"],
    "forwarder": [CI_VALUES / "forwarder-values.yaml"],
}
BASE_KINDS = ["ConfigMap", "DaemonSet", "Service", "ServiceAccount"]
# Prometheus Operator kinds: no schema ships for them (see test_crd_objects_have_valid_metadata).
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
OLDEST = "1.25.0"  # Chart.yaml's kubeVersion


def test_every_ci_values_file_is_a_case() -> None:
    assert {p.name for p in CI_VALUES.iterdir()} == {v[0].name for v in CASES.values() if v}


@pytest.mark.parametrize("case", CASES)
def test_lint(case: str) -> None:
    args = [a for v in CASES[case] for a in ("-f", str(v))]
    p = helm("lint", "--strict", str(CHART), *args)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("version", [OLDEST, latest_version()])
@pytest.mark.parametrize("case", CASES)
def test_manifests_are_valid_kubernetes(case: str, version: str) -> None:
    out = render(CASES[case], kube_version=version)
    extra = {"monitoring": sorted(CRD_KINDS), "forwarder": ["ConfigMap", "Deployment"]}
    expected = sorted(BASE_KINDS + extra.get(case, []))
    assert out.kinds() == expected
    for doc in out.docs:
        if doc["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(doc, version, strict=True)


def test_crd_objects_have_valid_metadata() -> None:
    # Their spec is checked field by field in test_monitoring; their metadata is plain ObjectMeta.
    out = render(CASES["monitoring"])
    for doc in out.docs:
        if doc["kind"] in CRD_KINDS:
            shell = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]}
            kubernetes_validate.validate(shell, latest_version(), strict=True)


def test_strict_validation_catches_a_misspelt_field() -> None:
    # Proves the validation above has teeth: a typo is an error, not an ignored key.
    ds: dict[str, Any] = copy.deepcopy(render().one("DaemonSet"))
    ds["spec"]["template"]["spec"]["hostPid"] = True
    with pytest.raises(kubernetes_validate.ValidationError, match="hostPid"):
        kubernetes_validate.validate(ds, latest_version(), strict=True)


def test_kubernetes_older_than_the_chart_supports_is_refused() -> None:
    p = helm("template", "r", str(CHART), "--kube-version", "1.24.0")
    assert p.returncode != 0
    assert "kubeVersion: >=1.25.0-0 which is incompatible with Kubernetes v1.24.0" in p.stderr
