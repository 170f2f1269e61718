"""Containers of the project's image under podman, started and always cleaned up by the tests.

podman runs through `scripts/image.sh podman`, so it uses the project's containers.conf (runc,
cgroupfs, rlimits this host allows) exactly as the build did. Every container runs with
--network=host: nothing is added to the host's firewall, and the broker on 127.0.0.1 is reachable.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import ROOT
from tests.support.collector import http_get

IMAGE_SH = ROOT / "scripts/image.sh"
CGROUP_ROOT = Path("/sys/fs/cgroup")
# podman's cgroupfs parent for containers and their conmon; it leaves these directories behind.
LIBPOD_PARENT = "libpod_parent"


def image_sh(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(IMAGE_SH), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def podman(*args: str, timeout: float = 120) -> str:
    p = image_sh("podman", *args, timeout=timeout)
    assert p.returncode == 0, f"podman {' '.join(args)} exited {p.returncode}:\n{p.stdout}{p.stderr}"
    return p.stdout


def build_image() -> str:
    """Build (or re-use the cached layers of) the image from this checkout; returns its name."""
    p = image_sh("build")
    assert p.returncode == 0, f"scripts/image.sh build failed:\n{p.stderr}"
    return image_sh("ref").stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Container:
    image: str
    run_args: list[str]  # podman run flags, before the image
    cmd: list[str] = field(default_factory=list)  # after the image: the entrypoint's arguments
    name: str = field(default_factory=lambda: f"ekp-test-{uuid.uuid4().hex[:10]}")
    started: bool = False

    def start(self) -> None:
        self.started = True  # from here on cleanup must remove it, even if `run` fails halfway
        podman("run", "--detach", "--pull=never", "--name", self.name, *self.run_args, self.image, *self.cmd)

    def pid(self) -> int:
        """The collector's pid on the host."""
        return int(podman("inspect", "--format", "{{.State.Pid}}", self.name))

    def running(self) -> bool:
        return podman("inspect", "--format", "{{.State.Running}}", self.name).strip() == "true"

    def logs(self) -> str:
        p = image_sh("podman", "logs", self.name, timeout=60)
        return p.stdout + p.stderr

    def wait_http(self, port: int, path: str, timeout: float = 120) -> None:
        """Until GET path answers 200 (a kubelet's probe, from outside the container). A 404 ends the
        wait at once: the collector's paths are fixed, so that probe would fail for the whole budget."""
        end = time.monotonic() + timeout
        last: tuple[int, str] | None = None
        while time.monotonic() < end:
            with contextlib.suppress(OSError):
                last = http_get(port, path)
                if last[0] == 200:
                    return
                assert last[0] != 404, f"GET {path} on :{port}: 404, no such endpoint:\n{self.logs()}"
            if not self.running():
                raise AssertionError(f"container exited waiting for {path}:\n{self.logs()}")
            time.sleep(0.5)
        raise AssertionError(f"GET {path} on :{port} never answered 200 (last {last}):\n{self.logs()}")

    def terminate(self, grace_s: float) -> int:
        """SIGTERM, as the kubelet and `docker stop` send it; the exit code once the collector is gone."""
        podman("kill", "--signal", "TERM", self.name)
        try:
            return int(podman("wait", self.name, timeout=grace_s).strip())
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {grace_s} s after SIGTERM:\n{self.logs()}") from None

    def remove(self) -> None:
        if self.started:
            image_sh("podman", "rm", "--force", "--time", "0", self.name, timeout=120)
            self.started = False


def remove_empty_cgroups(parent: str = LIBPOD_PARENT, patience_s: float = 5) -> None:
    """rmdir, leaf first, every empty directory under /sys/fs/cgroup/*/<parent>: podman leaves them
    behind. A cgroup that still holds a process refuses rmdir: a conmon finishing its cleanup gets
    `patience_s` to leave; another container's cgroup stays."""
    end = time.monotonic() + patience_s
    while True:
        for top in CGROUP_ROOT.glob(f"*/{parent}"):
            for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()
        if not any(CGROUP_ROOT.glob(f"*/{parent}")) or time.monotonic() > end:
            return
        time.sleep(0.2)


@contextlib.contextmanager
def containers() -> Iterator[list[Container]]:
    """Every Container appended to the list is removed on exit, with podman's leftover cgroups."""
    made: list[Container] = []
    try:
        yield made
    finally:
        for c in made:
            c.remove()
        remove_empty_cgroups()
