"""A reader's Kubernetes resolver: cgroup id -> the encoded `k8s` field, found off the hot path.

The reader's fast path reads `encoded` (a dict of pre-encoded Avro bytes) and nothing else. Everything
that can wait happens in one thread of the reader's own, made after the fork (a gRPC channel does not
survive one, and the supervisor never opens one: it forks readers again when they die):

- at start, the pods' cgroups are scanned and the runtime listed: containers that already run are
  known before their first record;
- inotify on the pods' cgroup tree (podcgroups.py) reports a container's cgroup when the runtime makes
  it, before its first exec, and the runtime is asked about it at once;
- every `refresh_s` the runtime is listed again (what inotify cannot see: a restarted runtime, a
  missed event);
- a record of a pod cgroup the resolver does not know yet asks for it (`unresolved`): that record goes
  out with `k8s` null and is counted by the caller as k8s_unresolved; the next ones find the bytes.

A cgroup that is not a pod's (the host's, podman's) is encoded as null on first sight and never asked
about. A removed container's bytes stay `retain_s` (at least 60 s): a reader may take its last records
from the ring after the runtime forgot it. While the runtime does not answer, what is known stays
known, new pod cgroups stay unresolved (counted), one warning says which socket and what to mount, and
everything waiting is resolved when it answers again.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from ..config import K8sConfig
from ..errors import CriError, RuntimeUnavailableError
from ..kernel.procfs import cgroup2_mount
from ..records.avro import NULL
from ..records.containers import ContainerInfo
from .cri import CriClient
from .inventory import Entry, Inventory
from .meta import KeyFilter, meta_of
from .podcgroups import CgroupChange, PodCgroups, is_pod_path

log = structlog.get_logger("k8s")

# Null entries of cgroups that are not pods' (the host's): dropped all at once past this many.
MAX_NULL_ENTRIES = 16384
_RETRY_S = (1.0, 2.0, 5.0)  # connection retries while the runtime does not answer
_RETRY_UNKNOWN_S = 1.0  # a pod cgroup the runtime does not know (yet) is asked about at most this often


def connect(cfg: K8sConfig) -> CriClient:
    """A client on k8s.runtime_socket, or on the first usual socket that answers. Raises CriError."""
    if not cfg.runtime_socket:
        return CriClient.detect(timeout_s=cfg.timeout_s)
    client = CriClient(cfg.runtime_socket, timeout_s=cfg.timeout_s)
    try:
        client.version()
    except CriError:
        client.close()
        raise
    return client


class PodResolver:
    def __init__(self, cfg: K8sConfig, node: str, *, mount: Path | None = None) -> None:
        self.cfg = cfg
        self.node = node
        self.cluster = cfg.cluster or None
        self.labels = KeyFilter(cfg.labels)
        self.mount = mount if mount is not None else cgroup2_mount()
        self.encoded: dict[int, bytes] = {}  # cgroup id -> the k8s union: the hot path's one lookup
        self.inventory = Inventory(cfg.retain_s)
        self.available: bool | None = None  # None until the first attempt
        self._nulls = 0
        self._pod_cgroups: dict[int, str] = {}  # cgroup id -> container id, pods' tree only
        self._cgroups_of: dict[str, set[int]] = {}  # container id -> its cgroup ids
        self._removed: dict[int, float] = {}  # cgroup id -> when its directory went
        self._waiting: set[int] = set()  # pod cgroups the runtime could not answer for yet
        self._next_try: dict[int, float] = {}  # ... and when to ask again (a busy one asks once a second)
        self._requests: queue.SimpleQueue[tuple[int, str]] = queue.SimpleQueue()
        self._requested: set[int] = set()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stop = False
        self.ready = threading.Event()  # set after the first scan and the first listing (or its failure)
        self._thread: threading.Thread | None = None
        self._client: CriClient | None = None

    # -- the reader's thread -------------------------------------------------------------------

    def unresolved(self, cgroup_id: int, info: ContainerInfo | None) -> bool:
        """A record of `cgroup_id` missed `encoded`: True when it is a pod's container not resolved
        yet (the caller counts it; resolution is requested), False when it is not a pod's."""
        cid = self._pod_cgroups.get(cgroup_id)
        if cid is None and info is not None and info.container_id and is_pod_path(info.cgroup_path):
            cid = info.container_id
        if cid is None:
            if info is not None:  # known, and not a pod's: null for good
                if self._nulls >= MAX_NULL_ENTRIES:
                    self._drop_nulls()
                self.encoded[cgroup_id] = NULL
                self._nulls += 1
            return False
        if cgroup_id not in self._requested:
            self._requested.add(cgroup_id)
            self._requests.put((cgroup_id, cid))
            self._wake()
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="k8s-resolver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop = True
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=self.cfg.timeout_s + 1.0)

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def _drop_nulls(self) -> None:
        for cg in [cg for cg, v in self.encoded.items() if v is NULL]:
            self.encoded.pop(cg, None)
        self._nulls = 0

    # -- the resolver's thread -----------------------------------------------------------------

    def _run(self) -> None:
        cgroups = PodCgroups(self.mount)
        try:
            for change in cgroups.scan():
                self._learn(change)
            next_refresh = 0.0
            next_connect = 0.0
            attempts = 0
            while not self._stop:
                now = time.monotonic()
                if self._client is None and now >= next_connect:
                    if self._connect():
                        attempts, next_refresh = 0, 0.0
                    else:
                        next_connect = now + _RETRY_S[min(attempts, len(_RETRY_S) - 1)]
                        attempts += 1
                if self._client is not None and now >= next_refresh:
                    self._guarded(self._refresh)
                    next_refresh = now + (self.cfg.refresh_s if self.available else _RETRY_S[0])
                if self._client is not None or self.available is False:
                    self.ready.set()
                self._serve_requests()
                self._expire(now)
                timeout = max(0.05, min(next_refresh, next_connect if self._client is None else 1e9) - now)
                ready, _, _ = select.select([self._wake_r, cgroups.fileno()], [], [], min(timeout, 5.0))
                if self._wake_r in ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                if cgroups.fileno() in ready:
                    for change in cgroups.changes():
                        self._learn(change)
        except Exception as e:  # never take the reader down: records go out with k8s null, counted
            log.error("k8s_resolver_failed", error=repr(e))
        finally:
            self.ready.set()
            cgroups.close()

    def _connect(self) -> bool:
        try:
            self._client = connect(self.cfg)
        except CriError as e:
            self._unavailable(e)
            return False
        log.info("k8s_runtime_connected", socket=self._client.socket)
        return True

    def _unavailable(self, e: CriError) -> None:
        if self.available is not False:
            log.warning(
                "k8s_runtime_unavailable",
                error=str(e),
                hint="k8s is null and counted as k8s_unresolved until the runtime answers",
            )
        self.available = False

    def _guarded(self, call: Callable[[], None]) -> None:
        """Run one step against the runtime; an unavailable runtime is noted, not raised."""
        try:
            call()
        except RuntimeUnavailableError as e:
            self._unavailable(e)
            return
        except CriError as e:
            log.warning("k8s_runtime_error", error=str(e))
            return
        if self.available is False:
            log.info("k8s_runtime_available", socket=self._client.socket if self._client else "")
        self.available = True

    def _refresh(self) -> None:
        assert self._client is not None
        self.inventory.refresh(self._client)
        self._resolve_waiting(force=True)

    def _resolve_waiting(self, *, force: bool = False) -> None:
        for cg in list(self._waiting):
            self._resolve(cg, force=force)

    def _serve_requests(self) -> None:
        while True:
            try:
                cg, cid = self._requests.get_nowait()
            except queue.Empty:
                break
            self._requested.discard(cg)
            self._pod_cgroups.setdefault(cg, cid)
            self._cgroups_of.setdefault(cid, set()).add(cg)
            self._waiting.add(cg)
        # while the runtime does not answer, only the refresh loop asks it again
        if self._client is not None and self._waiting and self.available is not False:
            self._guarded(self._resolve_waiting)

    def _learn(self, change: CgroupChange) -> None:
        cg = change.cgroup_id
        if not change.added:
            self._removed[cg] = time.monotonic()
            return
        self._pod_cgroups[cg] = change.container_id
        self._cgroups_of.setdefault(change.container_id, set()).add(cg)
        self._waiting.add(cg)
        if self._client is not None:
            self._guarded(lambda: self._resolve(cg, force=True))

    def _resolve(self, cg: int, *, force: bool = False) -> None:
        """Encode one pod cgroup's k8s field, asking the runtime if the inventory lacks it."""
        cid = self._pod_cgroups.get(cg)
        if cid is None:
            self._waiting.discard(cg)
            return
        now = time.monotonic()
        if not force and self._next_try.get(cg, 0.0) > now:
            return
        assert self._client is not None
        entry = self.inventory.resolve(self._client, cid)
        if entry is None:  # unknown to the runtime (yet): stays waiting, its records counted
            self._next_try[cg] = now + _RETRY_UNKNOWN_S
            return
        self.encoded[cg] = self._encode(entry)
        self._waiting.discard(cg)
        self._next_try.pop(cg, None)

    def _encode(self, entry: Entry) -> bytes:
        meta = meta_of(entry.pod, entry.container, node=self.node, cluster=self.cluster, labels=self.labels)
        return meta.encode_union()

    def _expire(self, now: float) -> None:
        """Forget a container retain_s after its cgroup went, or after the runtime stopped listing it."""
        cutoff = now - self.cfg.retain_s
        for cg in [cg for cg, t in self._removed.items() if t <= cutoff]:
            self._forget_cgroup(cg)
        for cid in self.inventory.expire():
            for cg in list(self._cgroups_of.get(cid, ())):
                self._forget_cgroup(cg)

    def _forget_cgroup(self, cg: int) -> None:
        self._removed.pop(cg, None)
        self._waiting.discard(cg)
        self._next_try.pop(cg, None)
        self.encoded.pop(cg, None)
        cid = self._pod_cgroups.pop(cg, None)
        if cid is not None:
            cgs = self._cgroups_of.get(cid)
            if cgs is not None:
                cgs.discard(cg)
                if not cgs:
                    del self._cgroups_of[cid]
