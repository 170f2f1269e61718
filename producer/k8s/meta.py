"""What a record says about its pod: the `k8s` value (schemas' K8s record), built and Avro-encoded once.

A container's metadata is known long before most of its records and changes never (a pod's labels can,
but the runtime keeps the labels the sandbox was created with), so it is encoded once per container and
the readers' fast path copies the bytes (producer/k8s/resolver.py).

The sandbox (pause) process of a pod has no container of the pod spec; it is reported as container
"POD", the name kubelet's dockershim gave it, and image "" (CRI's sandbox status names no image).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..records.avro import BRANCH1, NULL, long_, opt_string, string_
from .model import Container, Pod
from .workload import workload_of

SANDBOX_CONTAINER = "POD"
# <prefix>.containers: a container's first record, and its last
SEEN, GONE = "seen", "gone"
_EMPTY: Mapping[str, str] = MappingProxyType({})


class KeyFilter:
    """An allow list of label or annotation keys: exact keys or fnmatch globs (app.kubernetes.io/*)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        self._re = (
            re.compile("|".join(fnmatch.translate(p) for p in self.patterns)) if self.patterns else None
        )

    def __bool__(self) -> bool:
        return self._re is not None

    def select(self, values: Mapping[str, str]) -> dict[str, str]:
        """The allowed entries, sorted by key (so the encoding of equal maps is equal)."""
        if self._re is None:
            return {}
        match = self._re.fullmatch
        return {k: values[k] for k in sorted(values) if match(k)}


@dataclass(frozen=True)
class K8sMeta:
    """The K8s record of the schemas (io.github.ebpf_kafka_producer.events.K8s)."""

    namespace: str
    pod: str
    pod_uid: str
    container: str
    image: str
    labels: Mapping[str, str]
    workload_kind: str | None
    workload: str | None
    node: str
    cluster: str | None

    def record(self) -> dict[str, Any]:
        """As fastavro (and a consumer) sees it."""
        return {
            "namespace": self.namespace,
            "pod": self.pod,
            "pod_uid": self.pod_uid,
            "container": self.container,
            "image": self.image,
            "labels": dict(self.labels),
            "workload_kind": self.workload_kind,
            "workload": self.workload,
            "node": self.node,
            "cluster": self.cluster,
        }

    def encode(self) -> bytes:
        """The record's Avro binary encoding (fields in schema order)."""
        return b"".join(
            (
                string_(self.namespace.encode()),
                string_(self.pod.encode()),
                string_(self.pod_uid.encode()),
                string_(self.container.encode()),
                string_(self.image.encode()),
                encode_map(self.labels),
                _opt(self.workload_kind),
                _opt(self.workload),
                string_(self.node.encode()),
                _opt(self.cluster),
            )
        )

    def encode_union(self) -> bytes:
        """As the `k8s` field of an event: the union ["null", K8s], branch 1."""
        return BRANCH1 + self.encode()


def _opt(s: str | None) -> bytes:
    return opt_string(None if s is None else s.encode())


def encode_map(m: Mapping[str, str]) -> bytes:
    """Avro map<string>: one block of len(m) entries, then the empty block (fastavro writes the same)."""
    if not m:
        return NULL
    parts = [long_(len(m))]
    for k, v in m.items():
        parts += (string_(k.encode()), string_(v.encode()))
    parts.append(NULL)
    return b"".join(parts)


def meta_of(
    pod: Pod,
    container: Container | None,
    *,
    node: str,
    cluster: str | None,
    labels: KeyFilter,
) -> K8sMeta:
    """The K8s record of one container of `pod` (None: the pod's sandbox), with the allowed labels only."""
    w = workload_of(pod.name, pod.labels, pod.annotations, node_name=node)
    return K8sMeta(
        namespace=pod.namespace,
        pod=pod.name,
        pod_uid=pod.uid,
        container=SANDBOX_CONTAINER if container is None else container.name,
        image="" if container is None else container.image,
        labels=MappingProxyType(labels.select(pod.labels)) if labels else _EMPTY,
        workload_kind=None if w is None else str(w.kind),
        workload=None if w is None else w.name,
        node=node,
        cluster=cluster or None,
    )
