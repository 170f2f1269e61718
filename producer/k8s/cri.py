"""A CRI v1 client on the node's runtime socket: the calls attribution needs, each with a short deadline.

Every gRPC error is translated here, and only here, into the package's exception tree
(producer/errors.py)::

    UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED  -> RuntimeUnavailableError  (no socket, down, or hung)
    NOT_FOUND                                  -> CriNotFoundError         (container or pod gone)
    anything else                              -> CriError                 (e.g. UNIMPLEMENTED: not CRI v1)

Calls fail fast while the runtime is down (no wait-for-ready), and the channel retries its connection at
most every second, so a restarted runtime answers again within about a second.

A gRPC channel does not survive fork(): make the client in the process that uses it, after any fork.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc

from ..errors import CriError, CriNotFoundError, RuntimeUnavailableError
from . import model
from .cri_v1 import api_pb2 as pb
from .cri_v1 import api_pb2_grpc
from .model import Container, ContainerState, Pod, PodState, RuntimeVersion

# Where runtimes put their CRI socket, most common first. /var/run is a link to /run on current
# distributions; both are listed for hosts (and host mounts) where it is not.
DEFAULT_SOCKETS: tuple[str, ...] = (
    "/run/containerd/containerd.sock",
    "/var/run/containerd/containerd.sock",
    "/run/k3s/containerd/containerd.sock",  # k3s, RKE2
    "/var/snap/microk8s/common/run/containerd.sock",
    "/run/crio/crio.sock",
    "/var/run/crio/crio.sock",
    "/run/cri-dockerd.sock",
    "/var/run/cri-dockerd.sock",
)
DEFAULT_TIMEOUT_S = 2.0

_UNAVAILABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
_FIX = "mount the node's CRI socket into the collector (hostPath) or set its path"


def find_sockets(root: Path = Path("/"), candidates: Iterable[str] = DEFAULT_SOCKETS) -> list[Path]:
    """The candidates that are unix sockets under `root` (the host's / as mounted), each file once."""
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for c in candidates:
        p = root / c.lstrip("/")
        try:
            st = p.stat()
        except OSError:
            continue
        if stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            found.append(p)
    return found


def translate(code: grpc.StatusCode, details: str, socket: str, call: str, timeout_s: float) -> CriError:
    """The exception for a failed call: one line that names the socket and what to do."""
    details = " ".join((details or "").split())
    if code in _UNAVAILABLE:
        if not os.path.exists(socket):
            return RuntimeUnavailableError(f"no CRI socket at {socket}: {_FIX}")
        why = (
            f"no reply within {timeout_s:g} s"
            if code == grpc.StatusCode.DEADLINE_EXCEEDED
            else f"{code.name}: {details}"
        )
        return RuntimeUnavailableError(
            f"the CRI runtime at {socket} did not answer {call} ({why}): "
            "check that the runtime is running and that this is its socket"
        )
    if code == grpc.StatusCode.NOT_FOUND:
        return CriNotFoundError(f"{call} on {socket}: {details or 'not found'}")
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return CriError(
            f"the runtime at {socket} does not serve CRI v1 ({call}: {details}): "
            "point the collector at a CRI v1 runtime socket (containerd 1.6 or newer, CRI-O, cri-dockerd)"
        )
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return CriError(f"{call} on {socket} was refused ({details}): the collector must run as root")
    return CriError(f"{call} on {socket} failed ({code.name}: {details}): see the runtime's log")


class CriClient:
    """The RuntimeService of one CRI socket. Every call raises only CriError and its subclasses."""

    def __init__(self, socket: str | os.PathLike[str], *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.socket = str(Path(socket).absolute())
        self.timeout_s = timeout_s
        self._channel = grpc.insecure_channel(
            f"unix://{self.socket}",
            options=[
                # kubelet allows 16 MiB too: ListContainers on a busy node exceeds gRPC's 4 MiB default
                ("grpc.max_receive_message_length", 16 << 20),
                # a restarted runtime is reconnected within a second, not after gRPC's backoff of minutes
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000),
                # also the connect timeout (default 20 s): a runtime slow to shake hands gets a second
                ("grpc.min_reconnect_backoff_ms", 1000),
            ],
        )
        self._stub = api_pb2_grpc.RuntimeServiceStub(self._channel)

    @classmethod
    def detect(
        cls,
        *,
        root: Path = Path("/"),
        candidates: Sequence[str] = DEFAULT_SOCKETS,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> CriClient:
        """A client on the first candidate socket whose runtime answers Version over CRI v1."""
        refused: list[str] = []
        for path in find_sockets(root, candidates):
            client = cls(path, timeout_s=timeout_s)
            try:
                client.version()
            except CriError as e:
                refused.append(str(e))
                client.close()
                continue
            return client
        if refused:
            raise RuntimeUnavailableError("no CRI socket answered: " + "; ".join(refused))
        where = "" if root == Path("/") else f" under {root}"
        raise RuntimeUnavailableError(f"no CRI socket found at {', '.join(candidates)}{where}: {_FIX}")

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> CriClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _call(self, name: str, request: Any) -> Any:
        try:
            return getattr(self._stub, name)(request, timeout=self.timeout_s)
        except grpc.RpcError as e:
            # every RpcError the channel raises is also a grpc.Call, which carries the status
            code = e.code() if isinstance(e, grpc.Call) else grpc.StatusCode.UNKNOWN
            details = (e.details() if isinstance(e, grpc.Call) else str(e)) or ""
            raise translate(code, details, self.socket, name, self.timeout_s) from None

    def version(self) -> RuntimeVersion:
        r: pb.VersionResponse = self._call("Version", pb.VersionRequest(version="v1"))
        return model.runtime_version(r)

    def container_status(self, container_id: str) -> Container:
        """The container, with its sandbox id and host pid. Raises CriNotFoundError once the runtime has
        forgotten it (after removal; an exited container is still answered until then)."""
        r: pb.ContainerStatusResponse = self._call(
            "ContainerStatus", pb.ContainerStatusRequest(container_id=container_id, verbose=True)
        )
        sandbox_id, pid = model.verbose_info(r.info)
        if sandbox_id is None:  # a runtime whose verbose info lacks it: one more call
            listed = self.list_containers(container_id=r.status.id or container_id)
            if not listed:
                raise CriNotFoundError(f"ContainerStatus on {self.socket}: container {container_id} is gone")
            sandbox_id = listed[0].sandbox_id
        return model.container_from_status(r, sandbox_id, pid)

    def pod_sandbox_status(self, sandbox_id: str) -> Pod:
        r: pb.PodSandboxStatusResponse = self._call(
            "PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id)
        )
        return model.pod_from(r.status)

    def list_containers(
        self,
        *,
        container_id: str = "",
        sandbox_id: str = "",
        state: ContainerState | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> list[Container]:
        f = pb.ContainerFilter(id=container_id, pod_sandbox_id=sandbox_id, label_selector=labels or {})
        if state is not None:
            f.state.state = model.CONTAINER_STATE_TO_PB[state]
        r: pb.ListContainersResponse = self._call("ListContainers", pb.ListContainersRequest(filter=f))
        return [model.container_from_list(c) for c in r.containers]

    def list_pod_sandboxes(
        self, *, state: PodState | None = None, labels: Mapping[str, str] | None = None
    ) -> list[Pod]:
        f = pb.PodSandboxFilter(label_selector=labels or {})
        if state is not None:
            f.state.state = model.POD_STATE_TO_PB[state]
        r: pb.ListPodSandboxResponse = self._call("ListPodSandbox", pb.ListPodSandboxRequest(filter=f))
        return [model.pod_from(p) for p in r.items]
