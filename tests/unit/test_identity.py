"""Process identity in the records, and the processes topic's entries, without a kernel.

The fast encoders must write byte for byte what the reference decoders give fastavro, for the new
fields too (tests/unit/test_rawavro.py's assert_same), and every view of the processes stream (exec,
fork, exit) and the seeded entry must be what schemas/processes.avsc says.
"""

from __future__ import annotations

import pytest

from producer.errors import DecodeError
from producer.records import abi, catalog, codec, process, process_exec, processes
from producer.records.identity import boot_tag, process_id, start_ns_of_ticks
from tests.support.records import CTX, exec_record, exit_record, fork_record, open_record, processes_record
from tests.unit.test_rawavro import OFFSET, assert_same

BOOT = boot_tag(CTX.boot_id)


def decode(event_type: str, raw: bytes) -> dict[str, object]:
    return catalog.DECODERS[event_type](raw, 0, CTX, OFFSET)


def test_the_identity_format() -> None:
    assert process_id("4f1c2a9e", 0x1A2B, 4242) == "4f1c2a9e-1a2b-4242"
    assert boot_tag("4f1c2a9e-1111-2222-3333-444455556666") == "4f1c2a9e"
    assert start_ns_of_ticks(250) * 0 == 0 and start_ns_of_ticks(1) > 0


def test_every_record_names_its_image_and_its_parents() -> None:
    rec = decode(
        "file_open", open_record(pid=77, ppid=5, boot_ns=9_000, start_ns=8_000, parent_start_ns=7_000)
    )
    assert rec["process_id"] == process_id(BOOT, 8_000, 77)
    assert rec["parent_process_id"] == process_id(BOOT, 7_000, 5)


@pytest.mark.parametrize(
    "flags, own, parent",
    [
        (abi.TASK_PROC_UNKNOWN | abi.TASK_PARENT_UNKNOWN | abi.TASK_PPID_UNKNOWN, False, False),
        (abi.TASK_PARENT_UNKNOWN, True, False),
        (abi.TASK_PPID_UNKNOWN, True, False),
        (0, True, True),
    ],
)
def test_what_the_kernel_does_not_know_is_null(flags: int, own: bool, parent: bool) -> None:
    raw = exit_record(task_flags=flags, start_ns=0 if not own else 100, boot_ns=1_000)
    rec = decode("process_exit", raw)
    assert (rec["process_id"] is not None) is own
    assert (rec["parent_process_id"] is not None) is parent
    assert_same("process_exit", raw)


@pytest.mark.parametrize(
    "start, parent_start, boot", [(0, 0, 10), (20, 5, 10), (5, 6, 10)], ids=["no start", "after", "parent"]
)
def test_identity_times_out_of_order_are_corruption(start: int, parent_start: int, boot: int) -> None:
    with pytest.raises(DecodeError, match="identity times"):
        decode("process_fork", fork_record(boot_ns=boot, start_ns=start, parent_start_ns=parent_start))


def test_an_exec_names_the_image_it_replaced_and_its_parents_program() -> None:
    raw = exec_record(
        pid=50, boot_ns=1_000, start_ns=900, prev_start_ns=400, parent_filename=b"/usr/sbin/nginx"
    )
    rec = decode("process_exec", raw)
    assert rec["previous_process_id"] == process_id(BOOT, 400, 50)
    assert rec["parent_filename"] == "/usr/sbin/nginx" and rec["parent_comm"] == "bash"
    bare = exec_record(flags=0, parent_filename=b"/ignored")
    rec = decode("process_exec", bare)
    assert (
        rec["previous_process_id"] is None and rec["parent_filename"] is None and rec["parent_comm"] is None
    )
    for r in (raw, bare, exec_record(parent_filename=b"\xff\xfe", parent_comm=b"x\xc3")):
        assert_same("process_exec", r)
    with pytest.raises(DecodeError, match="replaced image"):
        decode("process_exec", exec_record(boot_ns=1_000, start_ns=900, prev_start_ns=900))


def test_a_fork_names_its_child() -> None:
    rec = decode("process_fork", fork_record(child_pid=99, child_start_ns=4_000, boot_ns=5_000))
    assert rec["child_process_id"] == process_id(BOOT, 4_000, 99)
    untracked = fork_record(flags=process.FORK_UNTRACKED, child_start_ns=0)
    assert decode("process_fork", untracked)["child_process_id"] is None
    assert_same("process_fork", untracked)


def test_an_exit_names_its_program() -> None:
    assert decode("process_exit", exit_record(filename=b"/usr/bin/sleep"))["filename"] == "/usr/bin/sleep"
    assert decode("process_exit", exit_record(filename=b""))["filename"] is None


@pytest.mark.parametrize("view", ["process_exec", "process_fork", "process_exit"])
def test_every_processes_view_fast_equals_reference(view: str) -> None:
    for kw in ({}, {"cgroup_id": 3}, {"filename": b"caf\xe9"}, {"comm": b"\xff"}):
        assert_same("processes", processes_record(view=view, **kw))
    raw = processes_record(view=view, pid=31, boot_ns=9_000, start_ns=8_000)
    rec = decode("processes", raw)
    want = {"process_exec": "exec", "process_fork": "fork", "process_exit": "exit"}[view]
    assert rec["kind"] == want and not rec["seeded"]
    # the message key is the entry's process_id, read from the raw record alone
    assert processes.key(raw, BOOT) == str(rec["process_id"]).encode()
    codec.validate(rec, codec.load_schema("processes"))


def test_processes_entries_of_each_view() -> None:
    fork = decode(
        "processes", processes_record(view="process_fork", pid=10, child_pid=11, child_start_ns=7_000)
    )
    assert fork["pid"] == 11 and fork["ppid"] == 10 and fork["process_id"] == process_id(BOOT, 7_000, 11)
    assert fork["argv"] == [] and fork["exit_code"] is None
    ex = decode("processes", processes_record(view="process_exit", exit_code=3, boot_ns=9_000))
    assert ex["exit_code"] == 3 and ex["exit_time"] == (9_000 + OFFSET) // 1000
    ex = decode("processes", processes_record(view="process_exec", argv=[b"/bin/ls", b"-l"]))
    assert ex["argv"] == ["/bin/ls", "-l"] and ex["previous_process_id"] is not None


def test_untracked_or_failed_records_are_not_processes_entries() -> None:
    with pytest.raises(DecodeError, match="retval -2"):  # failed execs never reach the processes ring
        decode("processes", processes_record(view="process_exec", retval=-2))
    with pytest.raises(DecodeError, match="not tracked"):
        decode("processes", processes_record(view="process_fork", flags=process.FORK_UNTRACKED))
    with pytest.raises(DecodeError, match="untracked"):
        raw = processes_record(
            view="process_exit", task_flags=abi.TASK_PROC_UNKNOWN | abi.TASK_PARENT_UNKNOWN
        )
        decode("processes", raw)
    with pytest.raises(DecodeError, match="made from type 7"):
        decode("processes", processes_record(view="process_exec", type_id=8 | 7 << abi.VIEW_SHIFT))


def test_a_seeded_entry_fits_the_schema() -> None:
    opts = process_exec.ExecOptions(max_args=2, max_arg_len=16)
    rec = processes.seeded_record(
        index=3,
        host="node-1",
        boot_id=CTX.boot_id,
        now_us=1,
        boot_to_wall_ns=OFFSET,
        pid=42,
        ppid=1,
        starttime_ticks=500,
        parent_starttime_ticks=1,
        uid=0,
        gid=0,
        comm=b"nginx",
        exe=b"/usr/sbin/nginx",
        argv=[b"nginx:", b"master process with a very long argument", b"more"],
        cgroup_id=7,
        container_id=None,
        opts=opts,
    )
    codec.validate(rec, codec.load_schema("processes"))
    assert rec["process_id"] == process_id(BOOT, start_ns_of_ticks(500), 42)
    assert rec["parent_process_id"] == process_id(BOOT, start_ns_of_ticks(1), 1)
    assert rec["argv"] == ["nginx:", "master process "] and rec["seeded"] and rec["cpu"] == -1
