"""A pod template from the rendered chart, as the `podman run` flags a kubelet would ask a runtime for.

Every field of the pod spec and of its one container is read; a field this translator does not know is
an error, so a chart change can never be silently left out of the test that runs the pod.

Why not `podman kube play` (podman 4.3, Debian 12, tried on the rendered pod): with hostNetwork it
refuses the container's ports ("PortMappings can only be used with Bridge or slirp4netns
networking"); without them it needs a pause image built from catatonit, and it writes a
podman-default-kube-network CNI config under /etc/cni/net.d. Its RuntimeDefault is the profile below.

What a single podman container cannot be, and what stands in for it:
- network: the chart's pod has a network namespace of its own; here it is --network=host (a pod
  network needs CNI or netavark, whose bridge leaves nftables rules on the host). The probes then
  reach the container port on 127.0.0.1, and the collector reaches the test broker there.
- seccompProfile RuntimeDefault: current runtimes' default profiles (containerd >= 1.7,
  containers-common >= 0.60) allow bpf() to a holder of CAP_BPF and perf_event_open() to a holder
  of CAP_PERFMON. Debian 12's podman ships containers-common 0.50.1, whose profile allows both only
  with CAP_SYS_ADMIN, so the least-privilege pod fails there ("could not open bpf map ...: Operation
  not permitted"). RuntimeDefault here is therefore this host's podman profile with those two rules
  added the way upstream added them; every other syscall rule stays as the host's runtime has it.
- emptyDir: a directory of the test's; sizeLimit is enforced by kubelet eviction, which has no
  equivalent here. memory requests only schedule (kubelet sets no cgroup value for them on v1).
- env fieldRef spec.nodeName: the node name the test passes.
- scheduling (tolerations, affinity, nodeSelector, priorityClassName) and the service account mean
  nothing on one host; no token is mounted, so automountServiceAccountToken must be false.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PODMAN_SECCOMP = Path("/usr/share/containers/seccomp.json")
# Pod fields about placement and API access, with nothing to do on a single host.
POD_SCHEDULING = {"tolerations", "affinity", "nodeSelector", "priorityClassName", "serviceAccountName"}
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
POD_FIELDS = {
    "containers", "volumes", "hostPID", "hostNetwork", "automountServiceAccountToken",
    "terminationGracePeriodSeconds", *POD_SCHEDULING,
}  # fmt: skip
CONTAINER_FIELDS = {
    "name", "image", "imagePullPolicy", "command", "args", "env", "ports", "resources", "securityContext",
    "volumeMounts", *PROBES,
}  # fmt: skip
SECURITY_FIELDS = {
    "privileged", "allowPrivilegeEscalation", "readOnlyRootFilesystem", "runAsUser", "runAsNonRoot",
    "capabilities", "seccompProfile",
}  # fmt: skip
PROBE_TIMING = {
    "initialDelaySeconds",
    "periodSeconds",
    "timeoutSeconds",
    "failureThreshold",
    "successThreshold",
}
# What a syscall needs besides CAP_SYS_ADMIN in current runtime default profiles.
SECCOMP_CAP_RULES = {"bpf": "CAP_BPF", "perf_event_open": "CAP_PERFMON"}


@dataclass
class PodmanPod:
    """`podman run [args] image [cmd]`, and what the kubelet would probe."""

    image: str
    args: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)  # named container ports
    probes: dict[str, tuple[str, int]] = field(default_factory=dict)  # probe -> (path, port)
    grace_s: int = 30


def _known(obj: dict[str, Any], known: set[str], where: str) -> None:
    unknown = set(obj) - known
    assert not unknown, f"{where}: the pod translator does not know {sorted(unknown)}; teach it (tests/image)"


def quantity(q: str | int, *, cpu: bool = False) -> float:
    """A Kubernetes quantity as bytes, or as cores when `cpu`."""
    m = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(q))
    assert m, f"not a quantity: {q!r}"
    number, suffix = float(m.group(1)), m.group(2)
    if cpu:
        assert suffix in ("", "m"), q
        return number / 1000 if suffix == "m" else number
    scale = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    assert suffix in scale, q
    return number * scale[suffix]


def runtime_default_seccomp(out: Path, base: Path = PODMAN_SECCOMP) -> Path:
    """The host's podman profile with bpf/perf_event_open allowed on CAP_BPF/CAP_PERFMON (see above)."""
    profile = json.loads(base.read_text())
    rules: list[dict[str, Any]] = []
    for rule in profile["syscalls"]:
        names = rule.get("names") or []
        moved = [n for n in names if n in SECCOMP_CAP_RULES] if rule.get("action") == "SCMP_ACT_ERRNO" else []
        if not moved:
            rules.append(rule)
            continue
        # The errno rule is shared with other CAP_SYS_ADMIN syscalls: give these two rules of their own,
        # skipped (as upstream does) when the container holds the syscall's own capability.
        if len(moved) < len(names):
            rules.append({**rule, "names": [n for n in names if n not in moved]})
        for name in moved:
            own = copy.deepcopy(rule)
            own["names"] = [name]
            own.setdefault("excludes", {}).setdefault("caps", []).append(SECCOMP_CAP_RULES[name])
            rules.append(own)
    for name, cap in SECCOMP_CAP_RULES.items():
        rules.append({"names": [name], "action": "SCMP_ACT_ALLOW", "includes": {"caps": [cap]}})
    profile["syscalls"] = rules
    out.write_text(json.dumps(profile))
    return out


def translate(
    pod: dict[str, Any],
    config_maps: dict[str, dict[str, str]],
    *,
    workdir: Path,
    node_name: str,
) -> PodmanPod:
    """The pod template's spec (one container) as podman flags; volumes' files are made under workdir."""
    spec = copy.deepcopy(pod)
    _known(spec, POD_FIELDS, "pod spec")
    assert spec.get("automountServiceAccountToken") is False, "a service account token would be mounted"
    (container,) = spec["containers"]
    _known(container, CONTAINER_FIELDS, "container")
    assert container.get("imagePullPolicy", "IfNotPresent") in ("IfNotPresent", "Never"), "image is local"
    out = PodmanPod(image=container["image"], grace_s=int(spec.get("terminationGracePeriodSeconds", 30)))
    out.args += ["--network=host"]  # see the module docstring
    if spec.get("hostPID"):
        out.args += ["--pid=host"]
    if "command" in container:
        out.args += ["--entrypoint", json.dumps(container["command"])]
    out.cmd = list(container.get("args", []))
    out.args += _env(container.get("env", []), node_name)
    out.ports = _ports(container.get("ports", []))
    out.probes = {p: _probe(container[p], out.ports, p) for p in PROBES if p in container}
    out.args += _resources(container.get("resources", {}))
    out.args += _security(container.get("securityContext", {}), workdir)
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        out.args += _mount(mount, volumes, config_maps, workdir)
    return out


def _env(env: list[dict[str, Any]], node_name: str) -> list[str]:
    args: list[str] = []
    for e in env:
        _known(e, {"name", "value", "valueFrom"}, f"env {e['name']}")
        if "valueFrom" in e:
            path = e["valueFrom"].get("fieldRef", {}).get("fieldPath")
            assert path == "spec.nodeName", f"env {e['name']}: only fieldRef spec.nodeName is known"
            value = node_name
        else:
            value = str(e.get("value", ""))
        args += ["--env", f"{e['name']}={value}"]
    return args


def _ports(ports: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in ports:
        _known(p, {"name", "containerPort", "protocol"}, "port")
        assert p.get("protocol", "TCP") == "TCP", p
        out[p.get("name", str(p["containerPort"]))] = int(p["containerPort"])
    return out


def _probe(probe: dict[str, Any], ports: dict[str, int], what: str) -> tuple[str, int]:
    _known(probe, {"httpGet", *PROBE_TIMING}, what)
    get = probe["httpGet"]
    _known(get, {"path", "port", "scheme"}, f"{what}.httpGet")
    assert get.get("scheme", "HTTP") == "HTTP", get
    port = get["port"]
    return get["path"], ports[port] if isinstance(port, str) else int(port)


def _resources(res: dict[str, Any]) -> list[str]:
    _known(res, {"requests", "limits"}, "resources")
    requests, limits = res.get("requests", {}), res.get("limits", {})
    _known(requests, {"cpu", "memory"}, "resources.requests")
    _known(limits, {"cpu", "memory"}, "resources.limits")
    args: list[str] = []
    if "cpu" in requests:  # the kubelet's MilliCPUToShares
        args += ["--cpu-shares", str(max(2, int(quantity(requests["cpu"], cpu=True) * 1024)))]
    if "cpu" in limits:
        args += ["--cpus", str(quantity(limits["cpu"], cpu=True))]
    if "memory" in limits:
        args += ["--memory", str(int(quantity(limits["memory"])))]
    return args


def _security(sc: dict[str, Any], workdir: Path) -> list[str]:
    _known(sc, SECURITY_FIELDS, "securityContext")
    args: list[str] = []
    if sc.get("privileged"):
        args.append("--privileged")
    caps = sc.get("capabilities", {})
    _known(caps, {"drop", "add"}, "securityContext.capabilities")
    args += [a for c in caps.get("drop", []) for a in ("--cap-drop", c)]
    args += [a for c in caps.get("add", []) for a in ("--cap-add", c)]
    if sc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    if sc.get("readOnlyRootFilesystem"):
        # podman would add writable tmpfs on /tmp, /run and /var/tmp; a pod gets only its volumes.
        args += ["--read-only", "--read-only-tmpfs=false"]
    if "runAsUser" in sc:
        args += ["--user", str(sc["runAsUser"])]
    if sc.get("runAsNonRoot"):
        assert sc.get("runAsUser", 0) != 0, "runAsNonRoot with uid 0 never starts"
    seccomp = sc.get("seccompProfile", {"type": "Unconfined"})  # the kubelet's default without SeccompDefault
    _known(seccomp, {"type"}, "seccompProfile")
    if seccomp["type"] == "RuntimeDefault":
        args += ["--security-opt", f"seccomp={runtime_default_seccomp(workdir / 'seccomp.json')}"]
    else:
        assert seccomp["type"] == "Unconfined", seccomp
        args += ["--security-opt", "seccomp=unconfined"]
    return args


def _mount(
    mount: dict[str, Any],
    volumes: dict[str, dict[str, Any]],
    config_maps: dict[str, dict[str, str]],
    workdir: Path,
) -> list[str]:
    _known(mount, {"name", "mountPath", "readOnly", "subPath"}, f"volumeMount {mount['name']}")
    vol = volumes[mount["name"]]
    _known(vol, {"name", "configMap", "emptyDir", "hostPath"}, f"volume {vol['name']}")
    target, ro = mount["mountPath"], bool(mount.get("readOnly"))
    if "hostPath" in vol:
        hp = vol["hostPath"]
        _known(hp, {"path", "type"}, f"volume {vol['name']}.hostPath")
        assert hp.get("type", "") in ("", "Directory", "DirectoryOrCreate", "Socket"), hp
        if hp.get("type") == "DirectoryOrCreate":  # as the kubelet does: made if missing (the spool)
            Path(hp["path"]).mkdir(parents=True, exist_ok=True)
        # The kubelet refuses to start the pod when a typed path is not of that type.
        assert hp.get("type") != "Directory" or Path(hp["path"]).is_dir(), (
            f"hostPath {hp['path']}: no directory"
        )
        assert hp.get("type") != "Socket" or Path(hp["path"]).is_socket(), f"hostPath {hp['path']}: no socket"
        source = Path(hp["path"])
    elif "configMap" in vol:
        _known(vol["configMap"], {"name"}, f"volume {vol['name']}.configMap")
        source = workdir / "volumes" / vol["name"]
        source.mkdir(parents=True, exist_ok=True)
        for key, text in config_maps[vol["configMap"]["name"]].items():
            (source / key).write_text(text)
        ro = True  # configMap volumes are always read-only
    else:
        empty = vol["emptyDir"]
        _known(empty, {"sizeLimit", "medium"}, f"volume {vol['name']}.emptyDir")
        if empty.get("medium") == "Memory":
            return ["--mount", f"type=tmpfs,destination={target}"]
        source = workdir / "volumes" / vol["name"]
        source.mkdir(parents=True, exist_ok=True)
    if "subPath" in mount:
        source = source / mount["subPath"]
        assert source.exists(), f"subPath {mount['subPath']} is not in volume {vol['name']}"
    return ["--volume", f"{source}:{target}:{'ro' if ro else 'rw'}"]


def host_path_mounts(pod: dict[str, Any], workdir: Path) -> list[str]:
    """Only the pod's hostPath volumes, as --volume flags at their mount paths."""
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    return [
        arg
        for m in container.get("volumeMounts", [])
        if "hostPath" in volumes[m["name"]]
        for arg in _mount(m, volumes, {}, workdir)
    ]
