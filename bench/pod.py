"""--in-pod: the load runs in a container of a real pod (the tests' containerd, tests/cri), so that every
event it makes is attributed to that pod (k8s on) or not (a tuned config with k8s.enabled: false).

The pod's container sleeps; the load (a host binary: the busybox image has no libc) joins that
container's cgroup v2 before it execs, which is all attribution looks at: its records carry the
container's cgroup id, which the readers' resolver knows from the runtime.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from producer.kernel.procfs import cgroup2_mount
from tests.cri.pods import Containerd, CriPods, PodSpec


@dataclass(frozen=True)
class BenchPod:
    socket: Path  # the runtime's CRI socket, for k8s.runtime_socket
    cgroup: Path  # the container's cgroup v2 directory, which the load joins


@contextlib.contextmanager
def bench_pod(workdir: Path) -> Iterator[BenchPod]:
    mount = cgroup2_mount()
    if mount is None:
        raise RuntimeError("--in-pod: no cgroup v2 hierarchy on this host")
    containerd = Containerd()
    containerd.up()
    pods = CriPods(containerd.socket, workdir / "cri-logs")
    try:
        pods.sweep()
        pod = pods.run(PodSpec(name="bench-0", namespace="bench", labels={"app": "bench"}))
        yield BenchPod(containerd.socket, mount / pod.cgroup_parent.lstrip("/") / pod.container_id)
    finally:
        try:
            pods.sweep()
        finally:
            pods.close()
            containerd.down()
