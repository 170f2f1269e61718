"""What the node's runtime runs: its containers and pod sandboxes by id, kept a while after they are gone.

Two calls list everything (ListPodSandbox, ListContainers: kubelet's own relist), and one id that is
not listed yet is asked for alone (ListContainers filtered by id, then PodSandboxStatus; a sandbox id
answers only the latter). An entry the runtime stops listing is kept `retain_s` longer, so records that
a reader takes from its ring after the container was removed still find their pod (Tracee keeps a dead
container 30 s, Tetragon deleted pods in a small cache; we keep at least 60 s).

Each call raises the client's CriErrors; the caller decides what an unavailable runtime means.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import CriNotFoundError
from .cri import CriClient
from .model import Container, ContainerState, Pod, PodState


@dataclass(frozen=True)
class Entry:
    """A container of a pod, or the pod's sandbox (container None)."""

    id: str
    pod: Pod
    container: Container | None

    @property
    def sandbox(self) -> bool:
        return self.container is None

    @property
    def ended(self) -> bool:
        """Exited (a container) or stopped (a sandbox): it will run nothing more."""
        if self.container is None:
            return self.pod.state is PodState.NOT_READY
        return self.container.state is ContainerState.EXITED


@dataclass
class Diff:
    """What one listing changed: entries new to the inventory, and those it no longer lists."""

    added: list[Entry] = field(default_factory=list)
    removed: list[Entry] = field(default_factory=list)
    listed: list[Entry] = field(default_factory=list)  # everything listed, new or not


class Inventory:
    def __init__(self, retain_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.retain_s = retain_s
        self.clock = clock
        self.live: dict[str, Entry] = {}
        self.gone: dict[str, tuple[Entry, float]] = {}  # id -> (entry, when it went)
        self.listed_at: float | None = None

    def get(self, id: str) -> Entry | None:
        e = self.live.get(id)
        if e is None:
            g = self.gone.get(id)
            e = None if g is None else g[0]
        return e

    def refresh(self, client: CriClient) -> Diff:
        pods = {p.id: p for p in client.list_pod_sandboxes()}
        containers = client.list_containers()
        now: dict[str, Entry] = {p.id: Entry(p.id, p, None) for p in pods.values()}
        for c in containers:
            pod = pods.get(c.sandbox_id) or self._pod(client, c.sandbox_id)
            if pod is not None:
                now[c.id] = Entry(c.id, pod, c)
        diff = Diff(listed=list(now.values()))
        t = self.clock()
        for id, e in now.items():
            if id not in self.live:
                diff.added.append(e)
            self.gone.pop(id, None)
        for id, e in self.live.items():
            if id not in now:
                diff.removed.append(e)
                self.gone[id] = (e, t)
        self.live = now
        self.listed_at = t
        return diff

    def resolve(self, client: CriClient, id: str) -> Entry | None:
        """One id the last listing did not have: None when the runtime does not know it (any more)."""
        known = self.get(id)
        if known is not None:
            return known
        listed = [c for c in client.list_containers(container_id=id) if c.id == id]
        if listed:
            c = listed[0]
            pod = self._pod(client, c.sandbox_id)
            entry = None if pod is None else Entry(id, pod, c)
        else:
            pod = self._pod(client, id)
            entry = None if pod is None else Entry(id, pod, None)
        if entry is not None:
            self.live[id] = entry
        return entry

    def _pod(self, client: CriClient, sandbox_id: str) -> Pod | None:
        known = self.live.get(sandbox_id) or (self.gone.get(sandbox_id) or (None,))[0]
        if known is not None and known.sandbox:
            return known.pod
        try:
            return client.pod_sandbox_status(sandbox_id)
        except CriNotFoundError:
            return None

    def expire(self) -> list[str]:
        """Forget what went more than retain_s ago; returns their ids."""
        cutoff = self.clock() - self.retain_s
        old = [id for id, (_, t) in self.gone.items() if t <= cutoff]
        for id in old:
            del self.gone[id]
        return old
