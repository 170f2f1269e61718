"""Process identity and lineage on the real kernel and the real broker.

Every record names the image of its process and of its parent (process_id, parent_process_id:
producer/records/identity.py); an exec starts a new identity with the same pid; pids reused get new
identities; processes older than the collector get /proc's identity and a seeded entry; and the
compacted <prefix>.processes topic alone is enough to walk any record's ancestry to pid 1.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from producer.kernel import cpus
from producer.records.identity import boot_tag, process_id, start_ns_of_ticks
from tests.support.collector import CollectorRunner
from tests.support.kafka import Message, consume
from tests.support.ledger import assert_identity, counter, final_report

pytestmark = [pytest.mark.kernel, pytest.mark.broker]

BOOT = boot_tag(cpus.boot_id())


def proc_id(pid: int) -> str:
    """The identity of a live process that has not exec'd since the collector started, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    ticks = int(stat[stat.rfind(b")") + 2 :].split()[19])
    return process_id(BOOT, start_ns_of_ticks(ticks), pid)


def topic(c: CollectorRunner, name: str) -> list[dict[str, Any]]:
    return [m.value for m in consume(c.broker.bootstrap, f"{c.prefix}.{name}")]


def processes(c: CollectorRunner) -> list[Message]:
    return consume(c.broker.bootstrap, f"{c.prefix}.processes")


def test_a_tree_and_an_in_place_exec(collector: CollectorRunner) -> None:
    marker = f"id-{uuid.uuid4().hex[:12]}"
    collector.start()
    # bash forks sh; sh forks sleep, then replaces itself with true (same pid, a new image)
    script = f"sh -c 'sleep 0.2; exec /bin/true {marker}'; true"
    bash = subprocess.Popen(["/bin/bash", "-c", script, marker])
    assert bash.wait() == 0
    time.sleep(0.5)
    assert collector.stop() == 0

    execs = {
        v["argv"][0] if v["argv"] else v["filename"]: v
        for v in topic(collector, "process_exec")
        if marker in " ".join(v["argv"]) or v["ppid"] == bash.pid or v["pid"] == bash.pid
    }
    me = proc_id(os.getpid())
    b, sh, true = execs["/bin/bash"], execs["sh"], execs["/bin/true"]
    sleep = next(
        v for v in topic(collector, "process_exec") if v["argv"][:1] == ["sleep"] and v["ppid"] == sh["pid"]
    )
    # bash: forked by this test, which predates the collector: its parent is /proc's identity of us
    assert b["pid"] == bash.pid and b["parent_process_id"] == me
    assert b["parent_comm"] == Path("/proc/self/comm").read_text().strip()
    assert b["parent_filename"] and b["parent_filename"].endswith(("python3", "python3.11")), b
    # sh: its parent is bash's image, its program named inline
    assert sh["parent_process_id"] == b["process_id"] and sh["parent_filename"] == "/bin/bash"
    assert sleep["parent_process_id"] == sh["process_id"] and sleep["parent_comm"] == "sh"
    # the in-place exec: same pid, a new identity, which says which image it replaced
    assert true["pid"] == sh["pid"] and true["process_id"] != sh["process_id"]
    assert true["previous_process_id"] == sh["process_id"]
    assert true["parent_process_id"] == b["process_id"]  # still forked by the same bash image
    for v in (b, sh, sleep, true):
        assert v["process_id"].startswith(f"{BOOT}-") and v["process_id"].endswith(f"-{v['pid']}")

    # the same identities on every record of those images
    exits = {
        v["pid"]: v
        for v in topic(collector, "process_exit")
        if v["pid"] in (b["pid"], sh["pid"], sleep["pid"])
    }
    assert exits[sleep["pid"]]["process_id"] == sleep["process_id"]
    assert exits[true["pid"]]["process_id"] == true["process_id"]  # the image that exited is true's
    assert exits[true["pid"]]["filename"] == "/bin/true"
    assert exits[b["pid"]]["process_id"] == b["process_id"]
    forks = [v for v in topic(collector, "process_fork") if v["pid"] in (b["pid"], sh["pid"])]
    by_child = {v["child_pid"]: v for v in forks}
    assert by_child[sh["pid"]]["process_id"] == b["process_id"]
    # the child's identity at fork is the one its exec replaced
    assert by_child[sh["pid"]]["child_process_id"] == sh["previous_process_id"]
    assert by_child[sleep["pid"]]["process_id"] == sh["process_id"]

    # the processes topic: keyed by identity, in the kernel's order per image
    entries = processes(collector)
    assert all(m.key == m.value["process_id"].encode() for m in entries)
    kinds: dict[str, list[str]] = {}
    for m in entries:
        kinds.setdefault(m.value["process_id"], []).append(m.value["kind"])
    assert kinds[sh["previous_process_id"]] == ["fork"]  # sh before its exec: forked, then replaced
    assert kinds[sh["process_id"]] == ["exec"]  # replaced by true: no exit of its own
    assert kinds[true["process_id"]] == ["exec", "exit"]
    assert kinds[sleep["process_id"]][-2:] == ["exec", "exit"]
    exit_entry = next(
        m.value for m in entries if m.value["process_id"] == true["process_id"] and m.value["kind"] == "exit"
    )
    assert exit_entry["exit_code"] == 0 and exit_entry["filename"] == "/bin/true"
    report = final_report(collector.broker.bootstrap, collector.prefix)
    for t in ("process_exec", "process_exit", "process_fork", "processes"):
        assert_identity(report, t)


def _spawn_with_pid(pid: int, argv: list[str]) -> subprocess.Popen[bytes] | None:
    """Start argv as `pid` by setting the pid namespace's last pid just below it (root only)."""
    for _ in range(20):
        Path("/proc/sys/kernel/ns_last_pid").write_text(str(pid - 1))
        p = subprocess.Popen(argv)
        if p.pid == pid:
            return p
        p.wait()
    return None


def test_a_reused_pid_gets_a_new_identity(collector: CollectorRunner) -> None:
    marker = f"reuse-{uuid.uuid4().hex[:12]}"
    collector.start()
    first = subprocess.Popen(["/bin/true", marker, "1"])
    first.wait()
    second = _spawn_with_pid(first.pid, ["/bin/true", marker, "2"])
    assert second is not None, "could not get the same pid again"
    second.wait()
    time.sleep(0.5)
    assert collector.stop() == 0
    mine = [v for v in topic(collector, "process_exec") if marker in v["argv"]]
    assert [v["pid"] for v in mine] == [first.pid, first.pid]
    assert mine[0]["process_id"] != mine[1]["process_id"]
    assert len({(v["process_id"], v["parent_process_id"]) for v in mine}) == 2


def test_a_process_older_than_the_collector(collector: CollectorRunner) -> None:
    old = subprocess.Popen(["/bin/sleep", "60"])
    try:
        time.sleep(0.1)
        expected = proc_id(old.pid)
        collector.start()
        old.send_signal(signal.SIGTERM)
        old.wait()
        time.sleep(0.5)
        assert collector.stop() == 0
    finally:
        old.kill()
    (ex,) = [v for v in topic(collector, "process_exit") if v["pid"] == old.pid]
    assert ex["process_id"] == expected  # consistent with /proc
    assert ex["parent_process_id"] == proc_id(os.getpid())
    assert ex["signal_name"] == "SIGTERM" and ex["filename"] == "/usr/bin/sleep"
    entries = [m.value for m in processes(collector) if m.value["process_id"] == expected]
    assert [e["kind"] for e in entries] == ["seeded", "exit"]
    seeded = entries[0]
    assert seeded["seeded"] and seeded["argv"] == ["/bin/sleep", "60"] and seeded["cpu"] == -1
    report = final_report(collector.broker.bootstrap, collector.prefix)
    assert counter(report, "seen", "processes", cpu=-1) >= 50  # every live process at start
    assert_identity(report, "processes")


def test_ancestry_to_pid_1_from_the_processes_topic_alone(collector: CollectorRunner) -> None:
    marker = f"deep-{uuid.uuid4().hex[:12]}"
    collector.start()
    # five shells deep, the last one execs /bin/true with the marker
    cmd = f"exec /bin/true {marker}"
    for _ in range(4):
        cmd = f"/bin/sh -c {shlex.quote(cmd)}; true"
    subprocess.run(["/bin/sh", "-c", cmd], check=True)
    time.sleep(0.5)
    assert collector.stop() == 0
    table: dict[str, dict[str, Any]] = {}
    for m in processes(collector):
        table[m.value["process_id"]] = m.value  # a compacted topic's view: the latest entry per key
    # the record whose ancestry is asked for: the marker's exec; from there, the processes topic alone
    (start,) = [v["process_id"] for v in topic(collector, "process_exec") if marker in v["argv"]]
    leaf = table[start]
    chain = [leaf]
    while chain[-1]["parent_process_id"] is not None:
        assert chain[-1]["parent_process_id"] in table, f"a broken chain at {chain[-1]}"
        chain.append(table[chain[-1]["parent_process_id"]])
        assert len(chain) < 64
    assert chain[-1]["pid"] == 1, [(v["pid"], v["comm"]) for v in chain]
    # true (the fifth shell's new image), the four shells above it, then pytest ... pid 1
    assert len(chain) >= 6
    comms = [v["comm"] for v in chain]
    assert comms[:5] == ["true", "sh", "sh", "sh", "sh"], comms


def test_identities_survive_a_reader_restart(collector: CollectorRunner, tmp_path: Path) -> None:
    collector.start(
        {"events": {"file_open": {"enabled": True, "path_prefixes": {"allow": [f"{tmp_path}/"]}}}}
    )
    loop = subprocess.Popen(["/bin/sh", "-c", f"while true; do echo x > {tmp_path}/f; sleep 0.05; done"])
    try:
        time.sleep(1.5)
        for ev in collector.log_events("reader_started"):
            os.kill(int(ev["pid"]), signal.SIGKILL)
        collector.wait_for_log("reader_restarted", count=1, timeout=30)
        time.sleep(2.0)
    finally:
        loop.kill()
        loop.wait()
    assert collector.stop() == 0
    mine = [v for v in topic(collector, "file_open") if v["pid"] == loop.pid]
    assert len(mine) > 20
    assert {v["process_id"] for v in mine} == {proc_id_of_loop(mine)}


def proc_id_of_loop(records: list[dict[str, Any]]) -> str:
    ids = {v["process_id"] for v in records}
    assert len(ids) == 1, ids  # one image, one identity, before and after the restart
    (only,) = ids
    return only


def test_a_full_process_table_is_counted_and_says_so(collector: CollectorRunner) -> None:
    marker = f"full-{uuid.uuid4().hex[:12]}"
    live = len([p for p in os.listdir("/proc") if p.isdigit()])
    size = 1024
    collector.start({"events": {"processes": {"table_size": size}}})
    # argv[0] is the marker (sleep would take an extra argument for an interval)
    sleepers = [subprocess.Popen([marker, "30"], executable="/bin/sleep") for _ in range(size - live + 64)]
    try:
        time.sleep(1.0)
    finally:
        for p in sleepers:
            p.kill()
        for p in sleepers:
            p.wait()
    time.sleep(0.5)
    assert collector.stop() == 0
    report = final_report(collector.broker.bootstrap, collector.prefix)
    untracked = counter(report, "untracked", "processes")
    assert untracked > 0, report["counters"]
    mine = [v for v in topic(collector, "process_exec") if marker in v["argv"]]
    unknown = [v for v in mine if v["process_id"] is None]
    assert unknown and all(v["parent_process_id"] is None for v in unknown)
    for t in ("process_exec", "processes"):
        assert_identity(report, t)
