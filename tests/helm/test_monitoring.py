"""Service, ServiceMonitor and PrometheusRule: wired to each other and to the collector's real metrics.

No Prometheus Operator schema ships offline, so the CRD objects are checked field by field.
"""

from __future__ import annotations

import re
from typing import Any

from producer.ledger.book import Balance, Snapshot
from producer.ops import metrics
from tests.helm.chart import NAMESPACE, Rendered, render
from tests.helm.test_render import CASES


def monitoring() -> Rendered:
    return render(CASES["monitoring"])


def exported_metric_names() -> set[str]:
    text = metrics.render(Snapshot(balances={"process_exec": Balance("process_exec")}), metrics.Health())
    return {m for m in re.findall(r"^(ebpf_producer_\w+)", text, re.M)}


def rules(out: Rendered) -> dict[str, dict[str, Any]]:
    (group,) = out.one("PrometheusRule")["spec"]["groups"]
    return {r["alert"]: r for r in group["rules"]}


def test_off_by_default() -> None:
    kinds = render().kinds()
    assert "ServiceMonitor" not in kinds and "PrometheusRule" not in kinds


def test_service_is_headless_and_selects_the_collector_pods() -> None:
    out = render()
    svc = out.one("Service")
    assert svc["spec"]["clusterIP"] == "None"  # one target per node, never load-balanced
    pod_labels = out.one("DaemonSet")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert svc["spec"]["ports"][0]["targetPort"] == "metrics"


def test_service_monitor_scrapes_the_service_port() -> None:
    out = monitoring()
    sm, svc = out.one("ServiceMonitor"), out.one("Service")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (ep,) = sm["spec"]["endpoints"]
    assert ep["port"] in [p["name"] for p in svc["spec"]["ports"]]
    assert ep["path"] == "/metrics"
    assert {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"} in ep["relabelings"]
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_alerts_use_metrics_the_collector_exports() -> None:
    alerts = rules(monitoring())
    assert set(alerts) == {"EbpfProducerEventsDropped", "EbpfProducerKafkaUnreachable", "EbpfProducerDown"}
    used = {m for r in alerts.values() for m in re.findall(r"ebpf_producer_\w+", r["expr"])}
    assert used == {"ebpf_producer_dropped_total", "ebpf_producer_kafka_reachable"}
    assert used <= exported_metric_names()


def test_alert_expressions() -> None:
    out = monitoring()
    sel = f'job="{out.one("Service")["metadata"]["name"]}",namespace="{NAMESPACE}"'
    alerts = rules(out)
    assert alerts["EbpfProducerEventsDropped"]["expr"] == (
        f"sum by (namespace, pod, node, event_type) (increase(ebpf_producer_dropped_total{{{sel}}}[10m])) > 0"
    )
    assert alerts["EbpfProducerKafkaUnreachable"]["expr"] == (
        f"max by (namespace, pod, node) (ebpf_producer_kafka_reachable{{{sel}}}) == 0"
    )
    assert alerts["EbpfProducerKafkaUnreachable"]["for"] == "5m"
    assert alerts["EbpfProducerDown"]["expr"] == f"up{{{sel}}} == 0"
    # Prometheus' own templating survives helm's
    assert "{{ $labels.pod }}" in alerts["EbpfProducerDown"]["annotations"]["description"]


def test_a_custom_selector_replaces_the_default() -> None:
    out = render(CASES["monitoring"], {"monitoring.prometheusRule.selector": 'job="ekp"'})
    assert rules(out)["EbpfProducerDown"]["expr"] == 'up{job="ekp"} == 0'
