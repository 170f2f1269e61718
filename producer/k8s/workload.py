"""The workload that owns a pod, from what the CRI shows of it: its name, labels and annotations.

The API server's ownerReferences would say it for certain, but the collector does not watch the API
server (Falco stopped doing so per node after it overloaded large clusters). The controllers leave
enough behind in a pod's labels and name:

  Deployment   ReplicaSet pods carry pod-template-hash=<hash> and are named <deployment>-<hash>-<5 random>
  StatefulSet  statefulset.kubernetes.io/pod-name, pods named <statefulset>-<ordinal>
  DaemonSet    controller-revision-hash (the bare hash; pod-template-generation on most versions),
               pods named <daemonset>-<5 random>
  Job          batch.kubernetes.io/job-name (1.27+) or job-name
  CronJob      a Job named <cronjob>-<scheduled time in minutes since the epoch> (8 to 10 digits)
  StaticPod    kubelet's annotation kubernetes.io/config.source=file|http; named <manifest>-<node>

A name the API server had to truncate (generated names are cut at 58 characters before the random
suffix) no longer contains the owner's full name: then, as for bare pods and unknown controllers, the
answer is None rather than a guess.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .model import Pod

# The alphabet of the API server's random name suffixes and of pod-template-hash values
# (no vowels, no 0/1/3: generated names never spell words or look alike).
_RAND = "[bcdfghjklmnpqrstvwxz2456789]"
_GENERATED = re.compile(rf"^(?P<base>.+)-{_RAND}{{5}}$")
_CRONJOB_JOB = re.compile(r"^(?P<cronjob>.+)-\d{8,10}$")
_ORDINAL = re.compile(r"^(?P<base>.+)-\d+$")
# 58 characters of generateName + 5 random: a name this long may have lost the end of its owner's name
_MAX_GENERATED = 63

STATIC_SOURCES = frozenset({"file", "http"})


class WorkloadKind(enum.StrEnum):
    DEPLOYMENT = "Deployment"
    STATEFULSET = "StatefulSet"
    DAEMONSET = "DaemonSet"
    JOB = "Job"
    CRONJOB = "CronJob"
    STATIC_POD = "StaticPod"


@dataclass(frozen=True)
class Workload:
    kind: WorkloadKind
    name: str


def workload_of(
    pod_name: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    *,
    node_name: str | None = None,
) -> Workload | None:
    """The owning workload, or None for a bare pod, an unknown controller or a truncated name.

    `labels`/`annotations` are the pod sandbox's (kubelet passes the pod's own there, not on its
    containers). `node_name` lets a static pod's name lose its -<node> suffix.
    """
    if annotations.get("kubernetes.io/config.source") in STATIC_SOURCES:
        suffix = f"-{node_name}" if node_name else None
        name = pod_name[: -len(suffix)] if suffix and pod_name.endswith(suffix) else pod_name
        return Workload(WorkloadKind.STATIC_POD, name)

    job = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")
    if job:
        m = _CRONJOB_JOB.match(job)
        return Workload(WorkloadKind.CRONJOB, m["cronjob"]) if m else Workload(WorkloadKind.JOB, job)

    if "statefulset.kubernetes.io/pod-name" in labels:
        m = _ORDINAL.match(pod_name)
        return Workload(WorkloadKind.STATEFULSET, m["base"]) if m else None

    revision = labels.get("controller-revision-hash")
    if revision is not None and ("pod-template-generation" in labels or "-" not in revision):
        m = _GENERATED.match(pod_name)
        return Workload(WorkloadKind.DAEMONSET, m["base"]) if m and len(pod_name) < _MAX_GENERATED else None

    template_hash = labels.get("pod-template-hash")
    if template_hash:
        m = re.match(rf"^(?P<deployment>.+)-{re.escape(template_hash)}-{_RAND}{{5}}$", pod_name)
        return Workload(WorkloadKind.DEPLOYMENT, m["deployment"]) if m else None
    return None


def workload_of_pod(pod: Pod, *, node_name: str | None = None) -> Workload | None:
    return workload_of(pod.name, pod.labels, pod.annotations, node_name=node_name)
