"""The pods' cgroups on this node, as they come and go: container cgroup id <-> container id.

kubelet puts every pod under one cgroup tree, `kubepods` (cgroupfs driver) or `kubepods.slice` (systemd
driver), and the runtime makes each container's cgroup there (the pause sandbox's too) when it creates
the container's task, before its first process runs. Watching that tree with inotify therefore tells
a resolver about a container before its first exec, instead of at its first event: the gap between
the cgroup's mkdir and the exec is the runtime's own start-up work (milliseconds), which is when the
runtime is asked. Directories that are not containers (QoS classes, pods) are watched; container
directories are leaves and are not.

A path names a container when producer/records/containers.py finds its id in it; a container cgroup
outside the pods' tree (podman, docker, systemd services) is not Kubernetes and never looked up.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from inotify_simple import INotify, flags

from ..records.containers import container_of

POD_ROOTS = ("kubepods", "kubepods.slice")
_DIR_EVENTS = flags.CREATE | flags.DELETE | flags.ONLYDIR | flags.DONT_FOLLOW


def is_pod_path(path: str) -> bool:
    """A cgroup path (relative to the cgroup2 mount) inside the pods' tree."""
    first = path.lstrip("/").split("/", 1)[0]
    return first in POD_ROOTS


def pod_container_id(path: str) -> str | None:
    """The container (or sandbox) id of a cgroup path in the pods' tree, else None."""
    if not is_pod_path(path):
        return None
    return container_of(path)[0]


@dataclass(frozen=True)
class CgroupChange:
    cgroup_id: int
    container_id: str
    path: str
    added: bool  # False: the directory was removed


class PodCgroups:
    """inotify watches over the pods' tree below `mount` (the cgroup2 mount; None: nothing to watch).

    `fileno()` is readable when changes are waiting; `changes()` reads them without blocking.
    """

    def __init__(self, mount: Path | None) -> None:
        self.mount = mount
        self._inotify = INotify(nonblocking=True)
        self._dirs: dict[int, str] = {}  # watch descriptor -> path relative to the mount
        self._ids: dict[str, int] = {}  # relative path of a container cgroup -> its id (inode)
        if mount is not None:
            self._watch("")  # the mount itself: kubepods may appear later

    def fileno(self) -> int:
        return int(self._inotify.fileno())

    def close(self) -> None:
        self._inotify.close()

    def scan(self) -> list[CgroupChange]:
        """Every container cgroup in the pods' tree now, watching each directory on the way."""
        found: list[CgroupChange] = []
        for root in POD_ROOTS:
            found += self._add_tree(root)
        return found

    def changes(self) -> Iterator[CgroupChange]:
        """Container cgroups made or removed since the last call (new subtrees are scanned as added)."""
        for ev in self._inotify.read(timeout=0):
            parent = self._dirs.get(ev.wd)
            if parent is None or not ev.name:
                if ev.mask & flags.IGNORED:
                    self._dirs.pop(ev.wd, None)
                continue
            rel = f"{parent}/{ev.name}" if parent else ev.name
            if not (is_pod_path(rel) and ev.mask & flags.ISDIR):
                continue
            if ev.mask & flags.CREATE:
                yield from self._add_tree(rel)
            elif ev.mask & flags.DELETE:
                cgid = self._ids.pop(rel, None)
                cid = pod_container_id(rel)
                if cgid is not None and cid is not None:
                    yield CgroupChange(cgid, cid, "/" + rel, added=False)

    def _add_tree(self, rel: str) -> list[CgroupChange]:
        """`rel` and below: containers reported, other directories watched (before listing them, so a
        directory made meanwhile is either listed or reported by its watch)."""
        assert self.mount is not None
        out: list[CgroupChange] = []
        stack = [rel]
        while stack:
            d = stack.pop()
            cid = pod_container_id(d)
            if cid is not None:
                try:
                    ino = os.stat(self.mount / d).st_ino
                except OSError:
                    continue  # already gone
                if self._ids.get(d) != ino:
                    self._ids[d] = ino
                    out.append(CgroupChange(ino, cid, "/" + d, added=True))
                continue
            if not self._watch(d):
                continue
            with contextlib.suppress(OSError), os.scandir(self.mount / d) as it:
                stack.extend(f"{d}/{e.name}" for e in it if e.is_dir(follow_symlinks=False))
        return out

    def _watch(self, rel: str) -> bool:
        assert self.mount is not None
        try:
            wd = self._inotify.add_watch(self.mount / rel if rel else self.mount, _DIR_EVENTS)
        except OSError:
            return False  # gone, or not a directory
        self._dirs[wd] = rel
        return True
