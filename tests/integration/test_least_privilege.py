"""The Helm chart's least-privilege capability set, measured on the real kernel.

The collector runs as root (as in the pod) but confined to exactly the chart's
capabilities (leastPrivilege.capabilities in values.yaml) and with a locked-memory
limit of 0, since a pod cannot raise RLIMIT_MEMLOCK and perf ring pages count as
locked memory. An exec must reach Kafka. Each capability is then shown to be
needed: without BPF or PERFMON preflight refuses; without IPC_LOCK the perf rings
cannot be mapped once they outgrow the per-user perf allowance.
"""

from __future__ import annotations

import resource
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT
from tests.support.caps import CAP_BITS, cap_sets
from tests.support.collector import CollectorRunner, run_cli, wait_ready
from tests.support.kafka import Broker, consume

pytestmark = [pytest.mark.kernel, pytest.mark.broker]

VALUES = yaml.safe_load((ROOT / "helm/ebpf-kafka-producer/values.yaml").read_text())
CHART_CAPS: list[str] = VALUES["leastPrivilege"]["capabilities"]


def confined(caps: list[str]) -> list[str]:
    """Root with only `caps` in every set, and no locked memory of its own."""
    bounding = ",".join(["-all", *(f"+{c.lower()}" for c in caps)])
    return [
        "prlimit",
        "--memlock=0:0",
        "--",
        "setpriv",
        f"--bounding-set={bounding}",
        "--inh-caps=-all",
        "--",
    ]


def pages_beyond_perf_allowance() -> int:
    """perf_pages per CPU larger than the per-user perf mlock allowance per CPU (perf_event_mlock_kb)."""
    allowance = int(Path("/proc/sys/kernel/perf_event_mlock_kb").read_text()) * 1024 // resource.getpagesize()
    pages = 1
    while pages <= allowance:
        pages *= 2
    return pages


@pytest.mark.parametrize("perf_pages", [64, pages_beyond_perf_allowance()])
def test_an_exec_reaches_kafka_with_only_the_charts_capabilities(
    broker: Broker, prefix: str, tmp_path: Path, perf_pages: int
) -> None:
    runner = CollectorRunner(broker=broker, prefix=prefix, workdir=tmp_path, wrapper=confined(CHART_CAPS))
    try:
        runner.start({"readers": {"perf_pages": perf_pages}})
        assert runner.proc is not None
        caps = cap_sets(runner.proc.pid)
        want = sum(1 << CAP_BITS[c] for c in CHART_CAPS)
        assert caps["CapEff"] == caps["CapBnd"] == want, caps  # really confined, not full root
        assert wait_ready(runner.metrics_port())[0] == 200  # the chart's readiness probe

        marker = f"lp-{uuid.uuid4().hex}"
        assert subprocess.run(["/bin/sh", "-c", "exit 0", marker], check=False).returncode == 0
        assert runner.stop() == 0, runner.log()
    finally:
        runner.kill()
    msgs = consume(runner.broker.bootstrap, f"{prefix}.process_exec")
    mine = [m.value for m in msgs if marker in m.value["argv"]]
    assert len(mine) == 1, runner.log()
    assert mine[0]["argv"] == ["/bin/sh", "-c", "exit 0", marker]


def _run_confined(caps: list[str], tmp_path: Path, cfg: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "c.yaml"
    path.write_text(cfg)
    return run_cli(["run", "--config", str(path), "--duration", "5"], prefix=confined(caps), timeout=120)


@pytest.mark.parametrize("missing", ["BPF", "PERFMON"])
def test_without_bpf_or_perfmon_preflight_refuses(missing: str, tmp_path: Path) -> None:
    p = _run_confined([c for c in CHART_CAPS if c != missing], tmp_path, "metrics: {listen: ''}\n")
    assert p.returncode == 3, p.stderr
    assert (
        p.stderr.strip()
        .splitlines()[-1]
        .startswith("ebpf-producer: privileges: loading BPF needs root, or CAP_BPF and CAP_PERFMON")
    )
    assert "bpf_compiled" not in p.stderr


def test_without_ipc_lock_large_perf_rings_cannot_be_mapped(
    broker: Broker, prefix: str, tmp_path: Path
) -> None:
    # perf_mmap() lets an unprivileged mapping exceed the user's perf allowance only against
    # RLIMIT_MEMLOCK, unless perf_event_paranoid is -1 or the caller has CAP_IPC_LOCK.
    if int(Path("/proc/sys/kernel/perf_event_paranoid").read_text()) < 0:
        pytest.skip("perf_event_paranoid is -1: this kernel applies no perf mlock limit")
    cfg = {
        "kafka": {"bootstrap_servers": broker.bootstrap, "topic_prefix": prefix},
        "metrics": {"listen": ""},
        "readers": {"perf_pages": pages_beyond_perf_allowance()},
    }
    p = _run_confined([c for c in CHART_CAPS if c != "IPC_LOCK"], tmp_path, yaml.safe_dump(cfg))
    assert p.returncode == 5, p.stderr
    assert "mmap: Operation not permitted" in p.stderr
    assert "ebpf-producer: bpf: cannot open the perf buffer of process_exec" in p.stderr
