"""The event catalogue on the real kernel and broker: one collector run, a real workload per event type,
field values asserted on what a consumer reads back from Kafka.

The run enables every event type (file_open limited to this test's directory by a path prefix,
syscall_counts on a 1 s interval) and denies one comm, so the filter can be seen at work. It runs once
per data plane: Python, and native (every stream type in C, the processes ring beside it).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from producer.config import EVENT_TYPES
from producer.kernel import procfs
from tests.support.collector import CollectorRunner
from tests.support.kafka import Broker, Message, consume
from tests.support.ledger import assert_identity, counter, final_report

pytestmark = [pytest.mark.kernel, pytest.mark.broker]

DENIED_COMM = "ekpdenied"


@dataclass
class Workload:
    """What the test did, to compare with what Kafka got."""

    tmp: Path
    marker: str
    exit7_pid: int = 0
    killed_pid: int = 0
    fork_child: int = 0
    opened: Path | None = None
    tcp: dict[str, tuple[int, int]] = field(default_factory=dict)  # family -> (listen port, client port)
    cgroup_id: int = 0
    cgroup: Path | None = None
    container_id: str = ""
    cgroup_pid: int = 0
    denied_runs: int = 0
    getppid_calls: int = 0


@dataclass
class Run:
    work: Workload
    report: dict[str, Any]
    topics: dict[str, list[Message]]


def _tcp_round_trip(family: int, host: str) -> tuple[int, int]:
    with socket.socket(family, socket.SOCK_STREAM) as srv:
        srv.bind((host, 0))
        srv.listen()
        port = srv.getsockname()[1]
        client = socket.create_connection((host, port))
        conn, _ = srv.accept()
        cport = client.getsockname()[1]
        time.sleep(0.2)  # a lifetime worth measuring
        client.close()
        conn.close()
    return port, cport


def _in_fresh_cgroup(work: Workload) -> Path:
    """Run a program in a new cgroup named like a Docker container's; returns the cgroup to remove later.

    It is removed only after the collector stopped: syscall_counts resolves container ids when it
    publishes, and a cgroup that is gone by then resolves to nothing (see producer/containers.py).
    """
    root = procfs.cgroup2_mount()
    assert root is not None, "no cgroup2 hierarchy"
    work.container_id = secrets.token_hex(32)
    cg = root / f"ekp-test-{uuid.uuid4().hex[:8]}" / f"docker-{work.container_id}.scope"
    cg.mkdir(parents=True)
    work.cgroup_id = os.stat(cg).st_ino
    # the shell moves itself into the cgroup, then execs: the exec and its syscalls belong to it
    loop = "import os\nfor _ in range(2000): os.getppid()"
    script = f"echo $$ > {cg}/cgroup.procs && exec /usr/bin/python3 -c '{loop}' {work.marker}"
    subprocess.run(["sh", "-c", script], check=True)
    work.getppid_calls = 2000
    return cg


def _workload(tmp: Path) -> Workload:
    w = Workload(tmp=tmp, marker=f"m{uuid.uuid4().hex[:12]}")
    p = subprocess.Popen(["sh", "-c", "exit 7", w.marker])
    assert p.wait() == 7
    w.exit7_pid = w.fork_child = p.pid
    p = subprocess.Popen(["sh", "-c", "kill -KILL $$", w.marker])
    assert p.wait() == -9
    w.killed_pid = p.pid
    w.opened = tmp / f"created-{w.marker}"
    fd = os.open(w.opened, os.O_CREAT | os.O_WRONLY, 0o640)
    os.close(fd)
    w.tcp["inet"] = _tcp_round_trip(socket.AF_INET, "127.0.0.1")
    w.tcp["inet6"] = _tcp_round_trip(socket.AF_INET6, "::1")
    denied = tmp / DENIED_COMM
    shutil.copy("/bin/true", denied)
    for _ in range(3):
        subprocess.run([str(denied), w.marker], check=True)
    w.denied_runs = 3
    w.cgroup = _in_fresh_cgroup(w)
    return w


# Every test runs on both data planes: the native one has no spool yet (producer/native: gaps).
PLANES = ("native", "python")  # each with the defaults otherwise, the spool on


@pytest.fixture(scope="module", params=PLANES)
def run(
    broker: Broker, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Run]:
    plane = request.param
    tmp = tmp_path_factory.mktemp("catalog")
    prefix = f"t{uuid.uuid4().hex[:12]}"
    c = CollectorRunner(broker=broker, prefix=prefix, workdir=tmp)
    c.start(
        {
            "events": {
                "file_open": {"enabled": True, "path_prefixes": {"allow": [str(tmp)]}},
                "syscall_counts": {"enabled": True, "interval_s": 1},
            },
            "filters": {"comm": {"deny": [DENIED_COMM]}},
            "readers": {"data_plane": plane},
        }
    )
    assert c.log_events("data_plane")[0]["active"] == plane
    work = Workload(tmp, "")
    try:
        work = _workload(tmp)
        time.sleep(1.5)  # one more syscall_counts interval
        assert c.stop() == 0
    finally:
        c.kill()
        if work.cgroup is not None:
            work.cgroup.rmdir()
            work.cgroup.parent.rmdir()
    report = final_report(broker.bootstrap, prefix)
    topics = {t: consume(broker.bootstrap, f"{prefix}.{t}", idle_s=2) for t in EVENT_TYPES}
    yield Run(work, report, topics)


def values(run: Run, topic: str) -> list[dict[str, Any]]:
    return [m.value for m in run.topics[topic]]


def test_the_ledger_closes_for_every_event_type(run: Run) -> None:
    for t in EVENT_TYPES:
        b = assert_identity(run.report, t)
        if t != "syscall_counts":
            assert len(run.topics[t]) == b["delivered"], t
        else:  # counted in syscalls, delivered as records
            assert sum(v["total"] for v in values(run, t)) == b["delivered"]


def test_process_exit_code_signal_and_lifetime(run: Run) -> None:
    exits = {v["pid"]: v for v in values(run, "process_exit")}
    e7 = exits[run.work.exit7_pid]
    assert (e7["exit_code"], e7["signal"], e7["comm"]) == (7, None, "sh")
    assert e7["ppid"] == os.getpid()
    assert e7["lifetime_ns"] is not None and 0 < e7["lifetime_ns"] < 10 * 10**9
    killed = exits[run.work.killed_pid]
    assert (killed["exit_code"], killed["signal"], killed["signal_name"]) == (None, 9, "SIGKILL")


def test_process_fork_pairs_parent_and_child(run: Run) -> None:
    forks = [v for v in values(run, "process_fork") if v["child_pid"] == run.work.fork_child]
    assert len(forks) == 1
    assert forks[0]["pid"] == os.getpid()
    # the child's exec then names the parent the fork recorded
    execs = [v for v in values(run, "process_exec") if v["pid"] == run.work.fork_child]
    assert execs and execs[0]["ppid"] == os.getpid()


def test_file_open_of_a_new_file(run: Run) -> None:
    opens = [v for v in values(run, "file_open") if v["path"] == str(run.work.opened)]
    assert len(opens) == 1, [v["path"] for v in values(run, "file_open")]
    o = opens[0]
    assert o["flag_names"][:2] == ["O_WRONLY", "O_CREAT"]
    assert o["flags"] & (os.O_CREAT | os.O_WRONLY) == os.O_CREAT | os.O_WRONLY
    assert o["mode"] == 0o640 and o["fd"] is not None and o["fd"] >= 0 and o["errno"] is None
    assert (o["pid"], o["tid"]) == (os.getpid(), threading.get_native_id())
    # the path prefix filter kept everything else out
    assert all(v["path"].startswith(str(run.work.tmp)) for v in values(run, "file_open"))


@pytest.mark.parametrize(("family", "addr"), [("inet", "127.0.0.1"), ("inet6", "::1")])
def test_tcp_connect_accept_close(run: Run, family: str, addr: str) -> None:
    lport, cport = run.work.tcp[family]
    me = os.getpid()
    conns = [v for v in values(run, "tcp_connect") if v["dport"] == lport and v["sport"] == cport]
    assert len(conns) == 1
    assert (conns[0]["family"], conns[0]["saddr"], conns[0]["daddr"], conns[0]["pid"]) == (
        family,
        addr,
        addr,
        me,
    )
    accepts = [v for v in values(run, "tcp_accept") if v["sport"] == lport and v["dport"] == cport]
    assert len(accepts) == 1
    assert accepts[0]["pid"] == me  # the listener, recorded at listen() though the accept ran in softirq
    closes = {
        v["direction"]: v
        for v in values(run, "tcp_close")
        if {v["sport"], v["dport"]} == {lport, cport} and v["family"] == family
    }
    assert set(closes) == {"outbound", "inbound"}
    for v in closes.values():
        assert 0.15e9 < v["lifetime_ns"] < 5e9, v["lifetime_ns"]
        assert v["pid"] == me


def test_a_denied_comm_is_filtered_and_counted(run: Run) -> None:
    assert not [v for v in values(run, "process_exec") if v["comm"] == DENIED_COMM]
    assert not [v for v in values(run, "process_exit") if v["comm"] == DENIED_COMM]
    assert counter(run.report, "filtered", "process_exit") >= run.work.denied_runs
    assert counter(run.report, "filtered", "process_exec") >= run.work.denied_runs


def test_cgroup_id_and_container_id(run: Run) -> None:
    execs = [
        v for v in values(run, "process_exec") if run.work.marker in v["argv"] and v["comm"] == "python3"
    ]
    assert len(execs) == 1, [v["filename"] for v in execs]
    assert execs[0]["cgroup_id"] == run.work.cgroup_id
    assert execs[0]["container_id"] == run.work.container_id


def test_syscall_counts_of_the_fresh_cgroup(run: Run) -> None:
    mine = [v for v in values(run, "syscall_counts") if v["cgroup_id"] == run.work.cgroup_id]
    assert mine
    assert mine[0]["container_id"] == run.work.container_id
    getppid = sum(s["count"] for v in mine for s in v["syscalls"] if s["name"] == "getppid")
    assert getppid >= run.work.getppid_calls
    assert all(v["total"] == sum(s["count"] for s in v["syscalls"]) for v in mine)


def test_uid_and_cgroup_filters_in_the_kernel(broker: Broker, tmp_path: Path) -> None:
    """A cgroup allow list (given as a path) admits only its processes; a uid deny list removes one user."""
    root = procfs.cgroup2_mount()
    assert root is not None
    cg = root / f"ekp-filter-{uuid.uuid4().hex[:8]}"
    cg.mkdir()
    marker = f"f{uuid.uuid4().hex[:10]}"
    c = CollectorRunner(broker=broker, prefix=f"t{uuid.uuid4().hex[:12]}", workdir=tmp_path)
    try:
        c.start(
            {
                "filters": {"cgroup": {"allow": [cg.name]}, "uid": {"deny": [4321]}},
                "events": {"process_fork": {"enabled": False}},
            }
        )
        inside = (
            f"echo $$ > {cg}/cgroup.procs && /bin/true {marker} in && "
            f"setpriv --reuid 4321 /bin/true {marker} denied"
        )
        subprocess.run(["sh", "-c", inside], check=True)
        subprocess.run(["/bin/true", marker, "outside"], check=True)
        assert c.stop() == 0
    finally:
        c.kill()
        cg.rmdir()
    execs = [
        v
        for v in (m.value for m in consume(broker.bootstrap, f"{c.prefix}.process_exec", idle_s=2))
        if marker in v["argv"]
    ]
    # setpriv itself (uid 0, inside the cgroup) is collected; the /bin/true it runs as uid 4321 is not,
    # and nothing from outside the cgroup is
    trues = [v for v in execs if v["argv"][0] == "/bin/true"]
    assert [v["argv"][-1] for v in trues] == ["in"], [(v["argv"], v["uid"]) for v in execs]
    assert not [v for v in execs if v["uid"] == 4321]
    assert {v["cgroup_id"] for v in execs} == {trues[0]["cgroup_id"]}
    report = final_report(broker.bootstrap, c.prefix)
    assert counter(report, "filtered", "process_exec") >= 2  # the denied uid and the process outside
