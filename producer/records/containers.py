"""Container attribution: cgroup v2 id -> cgroup path -> container id.

bpf_get_current_cgroup_id() is the inode number of the task's cgroup
directory in the cgroup v2 hierarchy. The path of that directory names the
container for the common runtimes:

    containerd (CRI)  .../cri-containerd-<64 hex>.scope   or  .../kubepods/.../<64 hex>
    CRI-O             .../crio-<64 hex>.scope
    Docker            .../docker-<64 hex>.scope            or  .../docker/<64 hex>

The resolver walks the hierarchy when an unknown id shows up and caches
what it finds.
`ContainerInfo` is the seam for Kubernetes pod metadata later.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ..kernel.procfs import cgroup2_mount

_ID = re.compile(r"(?:^|[-/])(?:cri-containerd-|crio-|docker-|libpod-)?([0-9a-f]{64})(?:\.scope)?$")


@dataclass(frozen=True)
class ContainerInfo:
    cgroup_path: str
    container_id: str | None
    runtime: str | None


def container_of(path: str) -> tuple[str | None, str | None]:
    """(container id, runtime) named by a cgroup path, or (None, None)."""
    for part in reversed(path.strip("/").split("/")):
        m = _ID.search(part)
        if m:
            runtime = next(
                (
                    r
                    for p, r in (
                        ("cri-containerd-", "containerd"),
                        ("crio-", "cri-o"),
                        ("docker-", "docker"),
                        ("libpod-", "podman"),
                    )
                    if part.startswith(p)
                ),
                "docker" if "/docker/" in path else "containerd" if "kubepods" in path else None,
            )
            return m.group(1), runtime
    return None, None


class ContainerResolver:
    """cgroup id -> ContainerInfo, walking the cgroup2 tree on misses.

    A new container's first exec is the event that matters most, so an id
    never looked for triggers a walk at once, or as soon as the last walk is
    `min_scan_s` old: until then it is not a miss (the walk before it may
    predate its cgroup), and each of its records asks again. An id a walk did
    not find is retried at most every `retry_s`.
    """

    def __init__(self, root: Path | None = None, min_scan_s: float = 0.01, retry_s: float = 2.0) -> None:
        self.root = root if root is not None else cgroup2_mount()
        self.min_scan_s = min_scan_s
        self.retry_s = retry_s
        self._by_id: dict[int, ContainerInfo] = {}
        self._missed: dict[int, float] = {}
        self._last_scan = -1e9

    def lookup(self, cgroup_id: int) -> ContainerInfo | None:
        info = self._by_id.get(cgroup_id)
        if info is not None or self.root is None:
            return info
        now = time.monotonic()
        missed = self._missed.get(cgroup_id)
        if missed is None:
            if now - self._last_scan < self.min_scan_s:
                return None  # not a miss: a walk that may have run before its cgroup existed
        elif now - max(self._last_scan, missed) < self.retry_s:
            return None
        self._scan()
        self._last_scan = now
        info = self._by_id.get(cgroup_id)
        if info is None:
            self._missed[cgroup_id] = now
        return info

    def holds_for(self, cgroup_id: int) -> float:
        """Seconds a lookup's answer for this id stays the answer (0: for good, once found): an id no
        walk has looked for yet may be found by the next, `min_scan_s` away; a missed one in `retry_s`."""
        if cgroup_id in self._by_id:
            return 0.0
        return self.retry_s if cgroup_id in self._missed else self.min_scan_s

    def container_id(self, cgroup_id: int) -> str | None:
        info = self.lookup(cgroup_id)
        return info.container_id if info is not None else None

    def _scan(self) -> None:
        assert self.root is not None
        found: dict[int, ContainerInfo] = {}
        for dirpath, _dirs, _files in os.walk(self.root):
            try:
                ino = os.stat(dirpath).st_ino
            except OSError:
                continue
            rel = "/" if dirpath == str(self.root) else "/" + os.path.relpath(dirpath, self.root)
            cid, runtime = container_of(rel)
            found[ino] = ContainerInfo(cgroup_path=rel, container_id=cid, runtime=runtime)
        # cgroups that are gone keep their entry: late events of a removed container still resolve
        self._by_id.update(found)
        self._missed = {k: v for k, v in self._missed.items() if k not in found}

    def path_to_id(self, path: str) -> int | None:
        """A cgroup path (absolute, or relative to the cgroup2 mount) -> its id, for filters."""
        p = Path(path)
        if not p.is_absolute() and self.root is not None:
            p = self.root / path
        try:
            return os.stat(p).st_ino
        except OSError:
            return None
