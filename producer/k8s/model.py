"""What the CRI client returns: plain frozen values, built from the protobuf replies here and nowhere else.

Times are nanoseconds since the epoch, as the CRI gives them; a time the runtime has not set yet (a
container that has not started or finished) is None rather than 0. Labels and annotations are read-only
mappings.

What containerd 1.6 returned for pods made as kubelet makes them (tests/cri/test_cri_client.py):
  - pod labels: the pod's own labels plus io.kubernetes.pod.{name,namespace,uid}, all set by kubelet;
    pod annotations: the pod's own plus kubelet's kubernetes.io/config.{source,seen};
  - container labels: io.kubernetes.container.name and io.kubernetes.pod.{name,namespace,uid} only, from
    kubelet: a pod's app labels are *not* on its containers; container annotations: kubelet's
    io.kubernetes.container.{hash,restartCount,...};
  - the runtime adds nothing to these. Its own io.kubernetes.cri.sandbox-{name,namespace,uid} annotations
    are in the verbose info's runtimeSpec only. Name, namespace and uid below come from the CRI
    metadata, which does not depend on kubelet's labels;
  - image: the name the container was created with (a repo tag); image_ref: "sha256:<image id>" (for
    these locally imported images, which have no repo digest); image_id: "" (a field of CRI >= 1.31);
  - an exited container: state exited, exit code, no pid; kept until RemovePodSandbox/RemoveContainer
    (still there after 60 s and after StopPodSandbox); finished_at can precede started_at by a fraction
    of a millisecond when the process exits at once;
  - a sandbox (pause) process sits in <pod cgroup>/<sandbox id>, an id ContainerStatus does not know
    (CriNotFoundError) and PodSandboxStatus does.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .cri_v1 import api_pb2 as pb


class ContainerState(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


class PodState(enum.StrEnum):
    READY = "ready"
    NOT_READY = "not_ready"


_CONTAINER_STATES = {
    pb.CONTAINER_CREATED: ContainerState.CREATED,
    pb.CONTAINER_RUNNING: ContainerState.RUNNING,
    pb.CONTAINER_EXITED: ContainerState.EXITED,
    pb.CONTAINER_UNKNOWN: ContainerState.UNKNOWN,
}
_POD_STATES = {pb.SANDBOX_READY: PodState.READY, pb.SANDBOX_NOTREADY: PodState.NOT_READY}
CONTAINER_STATE_TO_PB = {v: k for k, v in _CONTAINER_STATES.items()}
POD_STATE_TO_PB = {v: k for k, v in _POD_STATES.items()}


@dataclass(frozen=True)
class RuntimeVersion:
    runtime_name: str  # "containerd", "cri-o", ...
    runtime_version: str
    runtime_api_version: str  # "v1"


@dataclass(frozen=True)
class Container:
    """A container as the runtime reports it.

    From `CriClient.container_status` every field is filled in as far as the runtime knows it; from
    `list_containers` the runtime gives no start/finish time, exit code or pid (those are None).
    """

    id: str  # 64 hex, the id in the container's cgroup path
    name: str  # the container's name in the pod spec
    attempt: int  # restart count as kubelet tracks it
    sandbox_id: str  # the pod sandbox: CriClient.pod_sandbox_status(sandbox_id)
    image: str  # as the runtime names it (containerd: the image's first repo tag)
    image_ref: str  # digest or image id
    image_id: str  # CRI >= 1.31 runtimes; "" from older ones
    state: ContainerState
    created_at_ns: int
    started_at_ns: int | None
    finished_at_ns: int | None
    exit_code: int | None
    pid: int | None  # host pid of the container's init process, from the runtime's verbose info
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


@dataclass(frozen=True)
class Pod:
    id: str  # the sandbox id (not the pod uid)
    uid: str
    name: str
    namespace: str
    attempt: int
    state: PodState
    created_at_ns: int
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


def _frozen(m: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(m))


def _opt_ns(v: int) -> int | None:
    return v if v > 0 else None


def runtime_version(r: pb.VersionResponse) -> RuntimeVersion:
    return RuntimeVersion(r.runtime_name, r.runtime_version, r.runtime_api_version)


def verbose_info(info: Mapping[str, str]) -> tuple[str | None, int | None]:
    """(sandbox id, pid) from a verbose reply's "info" JSON (containerd and CRI-O both put them there)."""
    try:
        doc = json.loads(info.get("info", "") or "{}")
    except ValueError:
        return None, None
    if not isinstance(doc, dict):
        return None, None
    sandbox = doc.get("sandboxID")
    pid = doc.get("pid")
    return (
        sandbox if isinstance(sandbox, str) and sandbox else None,
        pid if isinstance(pid, int) and pid > 0 else None,
    )


def container_from_status(r: pb.ContainerStatusResponse, sandbox_id: str, pid: int | None) -> Container:
    s = r.status
    exited = s.state == pb.CONTAINER_EXITED
    return Container(
        id=s.id,
        name=s.metadata.name,
        attempt=s.metadata.attempt,
        sandbox_id=sandbox_id,
        image=s.image.image or s.image.user_specified_image,
        image_ref=s.image_ref,
        image_id=s.image_id,
        state=_CONTAINER_STATES.get(s.state, ContainerState.UNKNOWN),
        created_at_ns=s.created_at,
        started_at_ns=_opt_ns(s.started_at),
        finished_at_ns=_opt_ns(s.finished_at),
        exit_code=s.exit_code if exited else None,
        pid=pid,
        labels=_frozen(s.labels),
        annotations=_frozen(s.annotations),
    )


def container_from_list(c: pb.Container) -> Container:
    return Container(
        id=c.id,
        name=c.metadata.name,
        attempt=c.metadata.attempt,
        sandbox_id=c.pod_sandbox_id,
        image=c.image.image or c.image.user_specified_image,
        image_ref=c.image_ref,
        image_id=c.image_id,
        state=_CONTAINER_STATES.get(c.state, ContainerState.UNKNOWN),
        created_at_ns=c.created_at,
        started_at_ns=None,
        finished_at_ns=None,
        exit_code=None,
        pid=None,
        labels=_frozen(c.labels),
        annotations=_frozen(c.annotations),
    )


def pod_from(s: pb.PodSandboxStatus | pb.PodSandbox) -> Pod:
    return Pod(
        id=s.id,
        uid=s.metadata.uid,
        name=s.metadata.name,
        namespace=s.metadata.namespace,
        attempt=s.metadata.attempt,
        state=_POD_STATES.get(s.state, PodState.NOT_READY),
        created_at_ns=s.created_at,
        labels=_frozen(s.labels),
        annotations=_frozen(s.annotations),
    )
