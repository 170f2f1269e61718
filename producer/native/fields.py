"""A cgroup's fields for the native engine's table: what the Python path looks up per record.

The Python fast path asks, for every record, the container resolver (records/avro.py `common`:
container_id) and the Kubernetes resolver's `encoded` dict (avro.py `tail`: k8s). The engine asks
once per cgroup, when a record of a cgroup its table lacks (or whose entry expired) stops it, and
keeps the answer (src/cgroups.h). So that it stays the Python path's answer, an entry expires
wherever the Python path could answer differently later:

- a cgroup the container resolver does not know yet: when the resolver could answer again (its next
  walk for an id no walk has looked for, else its retry time);
- a pod's cgroup whose pod is not known yet: soon (K8S_RETRY_S), and each record meanwhile is
  counted as k8s_unresolved by the engine, as reader/pods.py counts each such record;
- a pod's known metadata: after k8s.refresh_s, the resolver's own refresh period.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..records.avro import NULL, ContainerOf, opt_string
from ..records.containers import ContainerInfo

# How soon a pod cgroup without its pod yet is asked about again (its records go out with k8s null
# and are counted meanwhile; the resolver asks the runtime in the background). The Python path asks per
# record, so it tags a pod's records from the moment the resolver knows it; an entry kept longer leaves a
# window in which this reader still says null where the Python path would not (0.2 s was seen in
# tests/cri/test_attribution.py: a new pod's file open after its exec). A miss costs one return to Python,
# so a pending pod costs at most 100 of them a second.
K8S_RETRY_S = 0.01


class Pods(Protocol):
    """What the engine's table needs of the reader's Kubernetes resolver (k8s/resolver.py)."""

    encoded: dict[int, bytes]

    def unresolved(self, cgroup_id: int, info: ContainerInfo | None) -> bool: ...


@dataclass(frozen=True)
class CgroupFields:
    container: bytes  # container_id, encoded
    k8s: bytes  # the k8s union, encoded
    unresolved: bool  # its pod is not known yet: each record counts as k8s_unresolved
    ttl_s: float  # 0: for good


def cgroup_fields(
    cgroup_id: int,
    container_of: ContainerOf,
    pods: Pods | None,
    holds_for: Callable[[int], float],
    refresh_s: float,
) -> CgroupFields:
    """`holds_for`: how long the container resolver's answer for an id stays its answer
    (ContainerResolver.holds_for), asked after the lookup."""
    info = container_of(cgroup_id)
    cid = None if info is None else info.container_id
    container = opt_string(None if cid is None else cid.encode())
    ttl = holds_for(cgroup_id) if info is None else 0.0
    if pods is None:
        return CgroupFields(container, NULL, False, ttl)
    k8s = pods.encoded.get(cgroup_id)
    if k8s is not None:
        return CgroupFields(container, k8s, False, min(ttl, refresh_s) if ttl else refresh_s)
    unresolved = pods.unresolved(cgroup_id, info)
    if unresolved:
        return CgroupFields(container, NULL, True, K8S_RETRY_S)
    # not a pod's (the resolver now says null for good), or not known to the container resolver yet
    return CgroupFields(container, pods.encoded.get(cgroup_id, NULL), False, ttl)
