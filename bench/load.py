"""The workload: bench/openload.c, built once per benchmark, run once per measurement."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .pipelines import HERE

_OUT = re.compile(r"opens=(\d+) failed=(\d+) seconds=([\d.]+) cpu_s=([\d.]+)")


@dataclass(frozen=True)
class LoadResult:
    opens: int
    failed: int
    seconds: float  # wall time of the loop
    cpu_s: float  # the load's own user+sys CPU, tracing programs included


@dataclass(frozen=True)
class Load:
    exe: Path
    target: Path  # the one file every measured open opens
    warmup: Path  # beside it, for the opens that show a pipeline is up (not counted)
    cgroup: Path | None = None  # a cgroup v2 directory the load joins first (--in-pod: a container's)

    @classmethod
    def build(cls, workdir: Path) -> Load:
        exe = workdir / "openload"
        src = HERE / "openload.c"
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(exe), str(src)], check=True)
        target, warmup = workdir / "target", workdir / "warmup"
        target.write_bytes(b"")
        warmup.write_bytes(b"")
        return cls(exe, target, warmup)

    def run(self, comm: str, rate: int, count: int, path: Path | None = None) -> LoadResult:
        """count opens of path (the target) at rate/s (0: as fast as possible) under the task name comm."""
        timeout = 60 + (count / rate if rate else count / 10_000)
        # exit status 1 means some opens failed: a figure to report, not an error
        cmd = [str(self.exe), comm, str(rate), str(count), str(path or self.target)]
        if self.cgroup is not None:
            cmd = ["sh", "-c", f'echo $$ > "{self.cgroup}/cgroup.procs" && exec "$@"', "sh", *cmd]
        p = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        m = _OUT.search(p.stdout)
        if m is None:
            raise RuntimeError(f"openload printed {p.stdout!r} {p.stderr!r} (exit {p.returncode})")
        return LoadResult(int(m[1]), int(m[2]), float(m[3]), float(m[4]))
