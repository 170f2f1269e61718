"""k8s: Kubernetes attribution from the node's CRI runtime socket (producer/k8s), never the API server."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .rules import Section, Seq, matches

# A label or annotation key, or a glob over keys (fnmatch: *, ?, [...]): app, app.kubernetes.io/*
_KEY_PATTERN = r"^[A-Za-z0-9*?\[\]][A-Za-z0-9._/*?\[\]-]*$"
KeyGlob = Annotated[
    str,
    matches(
        _KEY_PATTERN, "must be a label key or a glob over keys (e.g. app.kubernetes.io/*), got {value!r}"
    ),
]


class K8sConfig(Section):
    enabled: bool = Field(
        True, description="k8s metadata on every process record, <prefix>.containers; off: k8s is null"
    )
    runtime_socket: str = Field(
        "", description='the CRI socket; "" = the first of the usual containerd/CRI-O paths that answers'
    )
    cluster: str = Field("", description='k8s.cluster of every record ("" = null)')
    labels: Seq[KeyGlob] = Field(
        (), description="pod labels copied into events' k8s.labels (keys or globs; none by default)"
    )
    annotations: Seq[KeyGlob] = Field(
        (), description="pod annotations copied into <prefix>.containers records (keys or globs)"
    )
    refresh_s: float = Field(
        10.0, ge=0.5, le=3600, description="how often the runtime's containers and pods are listed again"
    )
    retain_s: float = Field(
        60.0, ge=60, le=86400, description="a container's metadata is kept this long after it is gone"
    )
    timeout_s: float = Field(2.0, gt=0, le=60, description="deadline of each call to the runtime")
