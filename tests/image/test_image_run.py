"""The image as a user runs it on a host: `podman run --privileged --pid=host --network=host` with the
chart's host mounts and a config file, against the real kernel and the test broker.

The host paths and where they go inside come from the rendered chart (values.yaml hostMounts and
ekp.hostMountTarget), so the image and the chart are tested against the same list.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.helm.chart import render
from tests.image.kubepod import host_path_mounts
from tests.image.podman import Container, containers, free_port
from tests.support.collector import CollectorRunner
from tests.support.kafka import Broker, consume_until
from tests.support.ledger import assert_identity, final_report

pytestmark = [pytest.mark.kernel, pytest.mark.broker, pytest.mark.slow]

CONFIG_PATH = "/etc/ebpf-kafka-producer/config.yaml"  # the image's entrypoint reads it


def test_the_image_collects_from_the_host_and_stops_cleanly(
    image: str, broker: Broker, prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    runner = CollectorRunner(broker=broker, prefix=prefix, workdir=tmp_path)
    config = runner.write_config({"metrics": {"listen": f"127.0.0.1:{port}"}})
    # no CRI runtime on this host's usual path (tests/cri runs its own elsewhere)
    mounts = host_path_mounts(render(sets={"criSocket": ""}).pod, tmp_path)
    assert len(mounts) == 2 * 6, mounts  # tracefs, modules, usrSrc, cgroup, bpffs, the spool's directory
    marker = f"img-{uuid.uuid4().hex}"
    with containers() as made:
        c = Container(
            image,
            [
                "--privileged",
                "--pid=host",
                "--network=host",
                *mounts,
                "--volume",
                f"{config}:{CONFIG_PATH}:ro",
            ],
        )
        made.append(c)
        c.start()
        c.wait_http(port, "/readyz")  # programs attached and the broker answering

        child = subprocess.Popen(["/bin/sh", "-c", "exit 0", marker])
        assert child.wait() == 0
        hit = consume_until(
            broker.bootstrap, f"{prefix}.process_exec", lambda m: marker in m.value["argv"], 60
        )
        assert hit is not None, c.logs()
        assert c.terminate(grace_s=40) == 0, c.logs()

    v = hit.value
    assert v["argv"] == ["/bin/sh", "-c", "exit 0", marker]
    assert v["filename"] == "/bin/sh"
    assert v["pid"] == child.pid and v["ppid"] == os.getpid()  # the host's pids: --pid=host
    assert v["host"] == socket.gethostname()
    report = final_report(broker.bootstrap, prefix)
    assert report["final"] is True
    assert assert_identity(report)["delivered"] >= 1
