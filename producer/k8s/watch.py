"""The containers of this node, as they come and go: the records of <prefix>.containers, as JSON lines.

Run by the supervisor as its own process (`python -m producer.k8s.watch`), which publishes what it
prints (producer/ops/containers.py). A process of its own because the supervisor must not open a gRPC
channel: it forks readers for as long as it runs, and a child forked while gRPC's threads are busy
fails or aborts (tried: 4 of 30 forks, one SIGABRT in ev_epoll1_linux.cc).

One record per container (and pod sandbox) when it is first seen, and one when it goes away: exited or
stopped, or no longer listed. The runtime is listed every k8s.refresh_s, and at once when a container's
cgroup appears or goes (podcgroups.py), so a container that lives 100 ms still gets both records.
Records carry every pod label and the allowed annotations.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from .. import log as log_setup
from ..config import K8sConfig
from ..errors import CriError, RuntimeUnavailableError
from ..kernel.procfs import cgroup2_mount
from .cri import CriClient
from .inventory import Entry, Inventory
from .meta import GONE, SEEN, KeyFilter, meta_of
from .model import ContainerState
from .podcgroups import CgroupChange, PodCgroups
from .resolver import connect

log = structlog.get_logger("k8s")

_ALL = KeyFilter(["*"])
_DEBOUNCE_S = 0.05  # cgroups of one pod appear together: one listing for them
_PR_SET_PDEATHSIG = 1


def _us(ns: int | None) -> int | None:
    return None if ns is None else ns // 1000


def record(
    entry: Entry,
    event: str,
    *,
    node: str,
    cfg: K8sConfig,
    annotations: KeyFilter,
    runtime: str | None,
    cgroup_id: int | None,
    removed: bool = False,
) -> dict[str, Any]:
    """One record of schemas/containers.avsc."""
    c, p = entry.container, entry.pod
    k8s = meta_of(p, c, node=node, cluster=cfg.cluster or None, labels=_ALL)
    return {
        "container_id": entry.id,
        "event": event,
        "kind": "sandbox" if c is None else "container",
        "state": "removed" if removed else str(p.state if c is None else c.state),
        "timestamp": time.time_ns() // 1000,
        "host": node,
        "runtime": runtime,
        "sandbox_id": p.id,
        "cgroup_id": cgroup_id,
        "k8s": k8s.record(),
        "annotations": annotations.select(p.annotations),
        "image_ref": "" if c is None else c.image_ref,
        "attempt": p.attempt if c is None else c.attempt,
        "created_at": _us(p.created_at_ns if c is None else c.created_at_ns),
        "started_at": None if c is None else _us(c.started_at_ns),
        "finished_at": None if c is None else _us(c.finished_at_ns),
        "exit_code": None if c is None else c.exit_code,
    }


class Watch:
    """The watcher's state: what was reported for each id, and the runtime's inventory."""

    def __init__(self, cfg: K8sConfig, node: str, emit: Callable[[dict[str, Any]], None]) -> None:
        self.cfg = cfg
        self.node = node
        self.emit = emit
        self.annotations = KeyFilter(cfg.annotations)
        self.inventory = Inventory(cfg.retain_s)
        self.reported: dict[str, str] = {}  # id -> the last event published for it
        self.cgroups: dict[str, int] = {}  # container id -> cgroup id, from the pods' cgroup tree
        self.runtime: str | None = None

    def sync(self, client: CriClient) -> int:
        """List the runtime and publish what changed; returns the records emitted."""
        if self.runtime is None:
            v = client.version()
            self.runtime = f"{v.runtime_name} {v.runtime_version}"
        diff = self.inventory.refresh(client)
        n = 0
        for e in diff.listed:
            last = self.reported.get(e.id)
            event = GONE if e.ended else SEEN
            if event == SEEN and self._unstarted(e):
                continue  # reported once runc has made its cgroup (that listing comes at once), or gone
            if last is None or (last == SEEN and event == GONE):
                n += self._emit(e, event)
        for e in diff.removed:
            if self.reported.get(e.id) != GONE:
                n += self._emit(e, GONE, removed=True)
        for id in self.inventory.expire():
            self.reported.pop(id, None)
            self.cgroups.pop(id, None)
        return n

    def _unstarted(self, e: Entry) -> bool:
        """A container the runtime has created but runc not yet: it has no cgroup, so its first record
        would say cgroup_id null when a moment later it could say which (CreateContainer returns before
        StartContainer makes the cgroup)."""
        c = e.container
        return c is not None and c.state is ContainerState.CREATED and e.id not in self.cgroups

    def add_cgroups(self, changes: Iterable[CgroupChange]) -> bool:
        """Note the containers' cgroups made since the last call; True if any came or went."""
        changed = False
        for ch in changes:
            changed = True
            if ch.added:
                self.cgroups[ch.container_id] = ch.cgroup_id
        return changed

    def _emit(self, e: Entry, event: str, *, removed: bool = False) -> int:
        self.reported[e.id] = event
        self.emit(
            record(
                e,
                event,
                node=self.node,
                cfg=self.cfg,
                annotations=self.annotations,
                runtime=self.runtime,
                cgroup_id=self.cgroups.get(e.id),
                removed=removed,
            )
        )
        return 1


def run(
    cfg: K8sConfig, node: str, emit: Callable[[dict[str, Any]], None], stopping: Callable[[], bool]
) -> None:
    watch = Watch(cfg, node, emit)
    cgroups = PodCgroups(cgroup2_mount())
    watch.add_cgroups(cgroups.scan())
    client: CriClient | None = None
    available: bool | None = None
    next_sync = 0.0
    try:
        while not stopping():
            now = time.monotonic()
            if now >= next_sync:
                try:
                    client = client or connect(cfg)
                    watch.add_cgroups(cgroups.changes())  # a cgroup made since the last select: known first
                    watch.sync(client)
                    if available is not True:
                        log.info("k8s_watch_listing", socket=client.socket, known=len(watch.inventory.live))
                    available = True
                    next_sync = now + cfg.refresh_s
                except RuntimeUnavailableError as e:
                    if available is not False:
                        log.warning("k8s_watch_runtime_unavailable", error=str(e))
                    available = False
                    next_sync = now + min(cfg.refresh_s, 2.0)
                except CriError as e:
                    log.warning("k8s_watch_error", error=str(e))
                    next_sync = now + cfg.refresh_s
            ready, _, _ = select.select(
                [cgroups.fileno()], [], [], max(0.0, min(next_sync - time.monotonic(), 0.5))
            )
            if ready and watch.add_cgroups(cgroups.changes()):
                time.sleep(_DEBOUNCE_S)  # a container came or went: list now (once for a burst)
                next_sync = 0.0
    finally:
        cgroups.close()
        if client is not None:
            client.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m producer.k8s.watch")
    ap.add_argument("--k8s", required=True, help="the k8s config section, as JSON")
    ap.add_argument("--node", required=True)
    ap.add_argument("--parent", type=int, default=0, help="exit when this process is gone")
    ap.add_argument("--log", default="{}", help="the log section, as JSON")
    args = ap.parse_args(argv)
    logcfg = json.loads(args.log)
    log_setup.configure(logcfg.get("level", "info"), logcfg.get("format", "console"))
    cfg = K8sConfig.model_validate_json(args.k8s)
    stop = False

    def on_signal(_sig: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when this one stops
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if args.parent and os.getppid() != args.parent:
        return 0

    def emit(rec: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(rec, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    try:
        run(cfg, args.node, emit, lambda: stop)
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
