"""The chart's own pod, run for real: the DaemonSet's pod template, rendered by helm, translated field by
field into podman flags (tests/image/kubepod.py, whose docstring lists what podman cannot be and what
stands in for it), with the ConfigMap's config.yaml as the file the collector reads.

Both security modes run: the pod must attach, answer its probes on the probe port, and publish a host
exec, decoded, under the chart's topic prefix. The perf rings are set larger than the locked memory a
container gets (RLIMIT_MEMLOCK, inherited from the runtime: 8 MiB here and under a stock containerd),
so mapping them needs the chart's IPC_LOCK as well as BPF and PERFMON. A chart change that breaks the
pod (a mount path, a capability, a probe path, the config's location) fails here, not on a cluster.
"""

from __future__ import annotations

import resource
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.helm.chart import render
from tests.image.kubepod import translate
from tests.image.podman import Container, containers, free_port
from tests.support.caps import CAP_BITS, cap_sets
from tests.support.collector import http_get
from tests.support.kafka import Broker, consume_until
from tests.support.ledger import assert_identity, final_report

pytestmark = [pytest.mark.kernel, pytest.mark.broker, pytest.mark.slow]


def pages_beyond_memlock() -> int:
    """perf_pages (a power of two) whose ring per CPU outgrows RLIMIT_MEMLOCK plus the perf allowance."""
    memlock = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    if memlock == resource.RLIM_INFINITY:
        return 64  # nothing to outgrow: the collector's default
    limit = memlock + int(Path("/proc/sys/kernel/perf_event_mlock_kb").read_text()) * 1024
    pages = 1
    while pages * resource.getpagesize() <= limit:
        pages *= 2
    return pages


@pytest.mark.parametrize("mode", ["leastPrivilege", "privileged"])
def test_the_charts_pod_attaches_answers_its_probes_and_publishes(
    image: str, broker: Broker, prefix: str, tmp_path: Path, mode: str
) -> None:
    port = free_port()
    repository, tag = image.rsplit(":", 1)
    rendered = render(
        sets={
            "image.repository": repository,
            "image.tag": tag,
            "securityMode": mode,
            "config.kafka.bootstrap_servers": broker.bootstrap,
            "config.kafka.topic_prefix": prefix,
            "config.metrics.listen": f"0.0.0.0:{port}",
            "config.readers.perf_pages": str(pages_beyond_memlock()),
            # no CRI runtime on the usual path of this host (tests/cri runs its own elsewhere)
            "criSocket": "",
            # the spool's hostPath: this test's own, so no other run's spool or ledger files meet it
            "spool.hostPath": str(tmp_path / "host-spool"),
        }
    )
    config_maps = {d["metadata"]["name"]: d["data"] for d in rendered.docs if d["kind"] == "ConfigMap"}
    node = f"node-{uuid.uuid4().hex[:8]}"
    pod = translate(rendered.pod, config_maps, workdir=tmp_path, node_name=node)
    assert pod.image == image
    ready_path, ready_port = pod.probes["readinessProbe"]
    assert ready_port == port  # the probes use the port the ConfigMap's config listens on
    marker = f"pod-{uuid.uuid4().hex}"

    with containers() as made:
        c = Container(pod.image, pod.args, cmd=pod.cmd)
        made.append(c)
        c.start()
        # The kubelet's startup budget for the readiness it then waits for.
        startup = rendered.container["startupProbe"]
        c.wait_http(ready_port, ready_path, timeout=startup["periodSeconds"] * startup["failureThreshold"])
        for probe in ("startupProbe", "livenessProbe"):
            path, probe_port = pod.probes[probe]
            assert http_get(probe_port, path)[0] == 200, (probe, path)
        if mode == "leastPrivilege":  # confined as the template says, not root with every capability
            caps = cap_sets(c.pid())
            want = sum(
                1 << CAP_BITS[cap] for cap in rendered.container["securityContext"]["capabilities"]["add"]
            )
            assert caps["CapEff"] == caps["CapBnd"] == want, caps

        assert subprocess.run(["/bin/sh", "-c", "exit 0", marker], check=False).returncode == 0
        hit = consume_until(
            broker.bootstrap, f"{prefix}.process_exec", lambda m: marker in m.value["argv"], 60
        )
        assert hit is not None, c.logs()
        assert c.terminate(pod.grace_s) == 0, c.logs()

    assert hit.value["argv"] == ["/bin/sh", "-c", "exit 0", marker]
    assert hit.value["filename"] == "/bin/sh"
    assert hit.value["host"] == node  # NODE_NAME from the downward API, as the chart passes it
    report = final_report(broker.bootstrap, prefix)
    assert report["final"] is True
    assert_identity(report)
