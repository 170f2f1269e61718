"""The native encoder (producer/native/src/records*.c) writes the bytes of the Python ones.

For every event type it covers: held equal to the reference (dict + fastavro) and to the type's fast
encoder (tests/support/encoders.py) at typical records, the boundaries of every field it reads
(identity and k8s included), clock offsets of either sign, invalid UTF-8 of every kind, records
malformed in every field, and under a fuzz of field values and of arbitrary bytes.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producer.errors import DecodeError
from producer.native import NATIVE_TYPES, _dataplane, tables
from producer.records import abi, catalog, process, process_exec, tcp
from producer.records.common import DecodeContext
from producer.records.process_exec import ExecOptions
from tests.support.encoders import (
    COMMON,
    EXEC_FIELDS,
    EXIT_FIELDS,
    FORK_FIELDS,
    OFFSET,
    OPEN_FIELDS,
    TCP_FIELDS,
    Native,
    Pods,
    assert_same,
    fast,
    reference,
)
from tests.support.records import (
    BOUNDARY,
    BUILDERS,
    CTX,
    exec_record,
    exit_record,
    fork_record,
    open_record,
    tcp_record,
)

# the clock offset is added before the division by 1000: both signs, and none
OFFSETS = (OFFSET, -OFFSET, 0, 999, -999)


def assert_each_same(event_type: str, records: list[bytes], ctx: DecodeContext = CTX) -> None:
    """assert_same for each record at every offset; some of them valid and some malformed, so that
    neither half is checked by no record at all."""
    for raw in records:
        assert_same(event_type, raw, offsets=OFFSETS, ctx=ctx)
    rejected = sum(reference(event_type, raw, 0, OFFSET, ctx=ctx) is DecodeError for raw in records)
    assert 0 < rejected < len(records)


def test_every_native_type_is_a_stream_type_with_a_builder() -> None:
    assert set(catalog.STREAM_TYPES) >= NATIVE_TYPES
    assert set(BUILDERS) >= NATIVE_TYPES


def test_the_build_reads_the_fields_where_the_mirror_says() -> None:
    assert tables.layout_drift(_dataplane.layout()) == ""
    layout = _dataplane.layout()
    moved = {**layout, "ekp_file_open": {**layout["ekp_file_open"], "task.start_ns": (40, 8)}}
    assert "ekp_file_open.task.start_ns" in tables.layout_drift(moved)


@pytest.mark.parametrize("event_type", sorted(NATIVE_TYPES))
def test_boundaries_of_the_common_fields(event_type: str) -> None:
    build = BUILDERS[event_type]
    unknown = abi.TASK_PROC_UNKNOWN
    for raw in (
        build(),
        build(cgroup_id=4),  # known, no container
        build(cgroup_id=5),  # a container id
        build(cgroup_id=3),  # a cgroup the container resolver does not know
        build(**BOUNDARY),
        build(seq=0, boot_ns=1, start_ns=1, parent_start_ns=0, cgroup_id=0, uid=0, gid=0, ppid=0),
        build(comm=b"x" * 15),
        build(comm=b"\xe2\x82"),
        # identity: known, unknown, the parent's unknown, the ppid unknown
        build(task_flags=unknown, start_ns=0, parent_start_ns=0),
        build(task_flags=unknown, start_ns=2**64 - 1, parent_start_ns=2**64 - 1),  # not read: unknown
        build(task_flags=abi.TASK_PARENT_UNKNOWN, parent_start_ns=2**63),
        build(task_flags=abi.TASK_PPID_UNKNOWN),
        build(task_flags=abi.TASK_PPID_UNKNOWN | abi.TASK_PARENT_UNKNOWN | abi.TASK_PROC_UNKNOWN),
        build(boot_ns=2**63 - 1, start_ns=2**63 - 1, parent_start_ns=2**63 - 1, pid=abi.PID_MAX_LIMIT),
        # beyond the bounds: rejected by every encoder
        build(start_ns=0),
        build(boot_ns=100, start_ns=101),
        build(start_ns=100, parent_start_ns=101),
        build(task_flags=abi.TASK_PARENT_UNKNOWN, start_ns=100, parent_start_ns=101),
        build(seq=2**63),
        build(boot_ns=2**64 - 1),
        build(cgroup_id=2**63),
        build(pid=0),
        build(pid=abi.PID_MAX_LIMIT + 1),
        build(tid=abi.PID_MAX_LIMIT + 1),
        build(ppid=abi.PID_MAX_LIMIT + 1),
        build(task_flags=abi.TASK_OWNER_UNKNOWN),
        build(task_flags=0x10),
        build(type_id=0),
        build(cpu=1),
        build(comm=b"c" * 16),  # no NUL in the field
    ):
        assert_same(event_type, raw, offsets=OFFSETS)


def test_file_open_fields_at_and_beyond_their_bounds() -> None:
    fixed = len(open_record()) - len(b"/etc/passwd\0") - 3
    for raw in (
        open_record(ret=-4096),  # neither an fd nor an errno
        open_record(ret=-4095),  # an errno without a name
        open_record(ret=-2),
        open_record(ret=2**31 - 1),
        open_record(open_flags=0xFFFFFFFF, mode=0o7777),  # every flag, the access mode 3, a hex rest
        open_record(open_flags=2**32),  # beyond u32
        open_record(open_flags=os.O_DIRECTORY, mode=0o644),  # part of O_TMPFILE's bits: mode reported
        open_record(open_flags=os.O_RDONLY, mode=0o644),  # not creating: mode null
        open_record(open_flags=os.O_WRONLY | os.O_CREAT | 0x40000000, mode=0o600),
        open_record(mode=0o10000),
        open_record(syscall=1, path=b"/tmp/\xff", flags=1),
        open_record(syscall=2),
        open_record(flags=2),
        open_record(path=b""),
        open_record(path=b"p" * 255),
        open_record(path_size=0),
        open_record(path_size=257),
        open_record(path=b"abc", path_size=2),  # no NUL within path_size
        open_record(path=b"abc", path_size=7),  # runs past the record (3 padding bytes only)
        open_record()[: fixed - 1],
        open_record()[:fixed],
        b"",
    ):
        assert_same("file_open", raw, offsets=OFFSETS)


def test_process_exit_fields_at_and_beyond_their_bounds() -> None:
    code, sig, start = process.EXIT_CODE_KNOWN, process.EXIT_SIGNALED, process.EXIT_START_KNOWN
    boot = 5_000_000_000
    records = [exit_record(flags=f, signal=9) for f in range(16)]  # every combination, and one beyond
    records += [exit_record(flags=f) for f in (0x10, 0x80000000, 0xFFFFFFFF)]
    # the exit status: 0..255 when known, anything when not read
    records += [exit_record(flags=code, exit_code=c) for c in (0, 1, 255, 256, -1, 2**31 - 1, -(2**31))]
    records += [exit_record(flags=0, exit_code=c) for c in (256, -1, -(2**31))]
    # signals 1..64: named, unnamed (32, 33: below SIGRTMIN), SIGRTMIN+n; 0 and 65 beyond; unread unless
    # signaled
    records += [exit_record(flags=sig | start, signal=s) for s in (*range(0, 67), 2**31, 2**32 - 1)]
    records += [exit_record(flags=code, signal=s) for s in (0, 65, 2**32 - 1)]
    # the start: 0, at the exit, after it; unread when not known
    for f in (0, 1, 999, 1000, boot - 1, boot, boot + 1, 2**63 - 1, 2**64 - 1):
        records += [exit_record(flags=code | start, fork_ns=f), exit_record(flags=code, fork_ns=f)]
    records += [exit_record(boot_ns=2**63 - 1, start_ns=1, fork_ns=f, flags=start) for f in (0, 2**63 - 1)]
    # the filename: none (null), escaped (alone or with comm), the longest, no NUL in the field
    for filename in (b"", b"/x", b"\xff", b"/bin/\xe2\x82", b"\xe2\x82\xac", b"p" * 255, b"p" * 256):
        records += [exit_record(filename=filename), exit_record(filename=filename, comm=b"\xff")]
    records += [exit_record(filename=b"a\0\xff")]  # what follows the NUL is not read
    fixed = len(exit_record())
    records += [exit_record()[: fixed - 1], exit_record()[:88], b"", exit_record() + b"\0" * 8]
    assert_each_same("process_exit", records)


def test_process_fork_fields_at_and_beyond_their_bounds() -> None:
    untracked = process.FORK_UNTRACKED
    boot = 5_000_000_000
    records = []
    for pid in (0, 1, abi.PID_MAX_LIMIT, abi.PID_MAX_LIMIT + 1, 2**32 - 1):
        records += [fork_record(child_pid=pid), fork_record(child_pid=pid, flags=untracked)]
    records += [fork_record(flags=f) for f in (2, 3, 0x80000000, 0xFFFFFFFF)]
    # the child's start: after 0, at or before the record, when tracked; not read when untracked
    for start in (0, 1, boot - 1, boot, boot + 1, 2**63, 2**64 - 1):
        records += [fork_record(child_start_ns=start), fork_record(child_start_ns=start, flags=untracked)]
    records += [fork_record(boot_ns=2**63 - 1, child_start_ns=2**63 - 1, child_pid=abi.PID_MAX_LIMIT)]
    # the filename is not written, but checked: no NUL is malformed, invalid UTF-8 is not escaped
    for filename in (b"", b"\xff", b"p" * 255, b"p" * 256):
        records += [fork_record(filename=filename), fork_record(filename=filename, comm=b"\xe2\x82")]
    fixed = len(fork_record())
    records += [fork_record()[: fixed - 1], fork_record()[:88], b"", fork_record() + b"\0" * 8]
    assert_each_same("process_fork", records)


def exec_context(opts: ExecOptions) -> DecodeContext:
    """A reader's decode context with these process_exec options (the others the defaults')."""
    return DecodeContext(CTX.host, CTX.boot_id, {**CTX.options, "process_exec": opts})


def exec_records(opts: ExecOptions) -> list[bytes]:
    """process_exec's own fields at and beyond the bounds of `opts`."""
    n, size = opts.max_args, opts.max_arg_len
    boot, start = 5_000_000_000, 2_500_000_000  # exec_record's defaults: the image's start is boot / 2
    # the arguments: none (argv_missing or an empty argv), empty strings, max_args of them and one more,
    # max_arg_len - 1 bytes long and more, every kind of invalid UTF-8
    records = [exec_record(argv=[]), exec_record(argv=[], flags=process_exec.EXEC_ARGV_MISSING)]
    records += [exec_record(argv=[b""]), exec_record(argv=[b"", b""]), exec_record(argv=[b"", b"x", b""])]
    records += [exec_record(argv=[b"a"] * k) for k in {n - 1, n, n + 1} if k >= 0]
    records += [exec_record(argv=[b"a" * k]) for k in {size - 2, size - 1, size, size + 1} if k >= 0]
    records += [exec_record(argv=[b"a" * (size - 1)] * n)]  # the most bytes the bounds allow
    records += [exec_record(argv=[b"a"], args_count=0), exec_record(argv=[b"a", b"b"], args_count=1)]
    records += [exec_record(argv=[b"a"], args_count=2), exec_record(argv=[], args_count=1)]
    # sizes: without the last NUL, none with a count, to the record's end and past it, beyond any bound
    records += [exec_record(argv=[b"ab"], args_size=k) for k in (2, 0)]
    records += [exec_record(argv=[b"ab"], args_size=k, pad=0) for k in (3, 4)]
    records += [exec_record(argv=[b"a", b"b"], args_size=4, pad=8), exec_record(argv=[b"a"], pad=0)]
    records += [exec_record(argv=[b"ab"], args_size=0xFFFF), exec_record(argv=[b"a"], args_count=0xFFFF)]
    for arg in (
        b"\xe2\x82\xac",
        b"\xe2\x82",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xc0\xaf",
        b"\x80",
        b"\xff",
    ):
        records += [
            exec_record(argv=[b"/bin/x", arg[: max(size - 1, 0)]]),
            exec_record(argv=[arg] * 2, comm=b"\xff"),
        ]
    # the flags: each combination, and bits beyond them
    records += [exec_record(flags=f) for f in range(process_exec.EXEC_FLAGS_ALL + 1)]
    records += [exec_record(flags=f) for f in (0x40, 0x80000000, 0xFFFFFFFF)]
    # the exit status: 0 alone, or failures with include_failed
    records += [exec_record(retval=r) for r in (0, 1, -1, -2, 2**31 - 1, -(2**31))]
    # the replaced image: known, before this one's start (not at it); unread unless known
    prev_known = process_exec.EXEC_PREV_KNOWN
    for prev in (0, 1, start - 1, start, start + 1, boot, 2**63, 2**64 - 1):
        records += [
            exec_record(flags=prev_known, prev_start_ns=prev),
            exec_record(flags=0, prev_start_ns=prev),
        ]
    records += [
        exec_record(flags=prev_known, task_flags=abi.TASK_PROC_UNKNOWN),  # no start: nothing is before it
        exec_record(flags=0, task_flags=abi.TASK_PROC_UNKNOWN),
        exec_record(flags=prev_known, task_flags=abi.TASK_PARENT_UNKNOWN | abi.TASK_PPID_UNKNOWN),
        exec_record(boot_ns=2**63 - 1, start_ns=2**63 - 1, prev_start_ns=2**63 - 2),
    ]
    # the parent's program: known (empty: null), escaped, without NUL; not read unless known
    parent = process_exec.EXEC_PARENT_KNOWN
    for pfile, pcomm in (
        (b"", b""),
        (b"/usr/bin/bash", b""),
        (b"", b"bash"),
        (b"/usr/bin/\xff", b"b\xe2\x82"),
        (b"/usr/bin/\xff", b"bash"),  # each escaped alone: each counts in strings_escaped
        (b"/usr/bin/bash", b"\xff"),
        (b"p" * 255, b"c" * 15),
        (b"p" * 256, b"bash"),
        (b"/usr/bin/bash", b"c" * 16),
        (b"a\0\xff", b"b\0\xff"),
    ):
        records += [exec_record(flags=f, parent_filename=pfile, parent_comm=pcomm) for f in (parent, 0)]
    # the filename: empty, escaped, the longest, no NUL in the field
    for filename in (b"", b"/bin/\xff", b"\xe2\x82\xac", b"p" * 255, b"p" * 256, b"a\0\xff"):
        records += [exec_record(filename=filename), exec_record(filename=filename, comm=b"\xe2\x82")]
    # cut short: in the fixed part, at its end, inside the arguments; longer than it says
    fixed = len(exec_record(argv=[], pad=0))
    whole = exec_record(pad=0)
    records += [
        whole[: fixed - 1],
        whole[:fixed],
        whole[: fixed + 3],
        whole[:-1],
        whole[:88],
        b"",
        whole + b"\xff" * 8,
    ]
    return records


@pytest.mark.parametrize(
    "opts",
    [
        ExecOptions(),
        ExecOptions(include_failed=True),
        ExecOptions(max_args=2, max_arg_len=16, include_failed=True),  # the smallest the config allows
        ExecOptions(max_args=3, max_arg_len=5),  # beyond what the config allows: the checks alone
        ExecOptions(max_args=1, max_arg_len=1),  # only one empty argument
        ExecOptions(max_args=0, max_arg_len=0),  # no argument at all
    ],
    ids=str,
)
def test_process_exec_fields_at_and_beyond_their_bounds(opts: ExecOptions) -> None:
    """Each encoder applies the reader's bounds: the same records are valid and malformed for all."""
    assert_each_same("process_exec", exec_records(opts), exec_context(opts))


def test_process_exec_the_largest_arguments_all_escaped() -> None:
    """Every byte of the arguments escaped to four: more than the 64 KiB the engine once had room for."""
    big = ExecOptions(max_args=128, max_arg_len=256)  # the config's largest: 32 KiB of arguments
    records = [exec_record(argv=[b"\xff" * 255] * 128), exec_record(argv=[b"\xe2\x82" * 127] * 128)]
    assert_each_same("process_exec", [*records, exec_record(argv=[b"a" * 256])], exec_context(big))
    widest = ExecOptions(max_args=0xFFFF, max_arg_len=0x10000)  # args_size (u16) is the only bound
    for raw in (
        exec_record(argv=[b"\xff" * 0xFFFE]),
        exec_record(argv=[b"\x80"] * 0x7FFF + [b""]),
        exec_record(argv=[b"a"] * 0x7FFF),
    ):
        want = reference("process_exec", raw, 0, OFFSET, ctx=exec_context(widest))
        assert isinstance(want, tuple) and len(want[0]) > 0x10000
        assert_same("process_exec", raw, offsets=OFFSETS, ctx=exec_context(widest))


def test_process_exec_options_reach_the_native_tables() -> None:
    with pytest.raises(ValueError, match="ancestors"):
        tables.encoder_tables("node", "boot", ExecOptions(ancestors=1))
    for bad in ((-1, 128), (32, 2**32)):
        with pytest.raises(ValueError, match="exec_options"):
            _dataplane.Encoder(tables.encoder_tables("node", "boot", ExecOptions(*bad)))


TCP_TYPES = ("tcp_connect", "tcp_accept", "tcp_close")


@pytest.mark.parametrize("event_type", TCP_TYPES)
def test_tcp_fields_at_and_beyond_their_bounds(event_type: str) -> None:
    def build(**kw: Any) -> bytes:
        return tcp_record(event_type, **kw)

    v6 = tcp.AF_INET6
    boot = 5_000_000_000
    records = [build(family=f) for f in (0, 1, tcp.AF_INET, 3, 9, v6, 11, 0xFFFF)]
    records += [build(direction=d) for d in (0, tcp.TCP_OUTBOUND, tcp.TCP_INBOUND, 3, 0xFF)]
    records += [build(established_ns=t) for t in (0, 1, boot - 1, boot, boot + 1, 2**63, 2**64 - 1)]
    records += [build(boot_ns=2**63 - 1, start_ns=1, established_ns=t) for t in (1, 2**63 - 1)]
    records += [build(sport=p, dport=q) for p, q in ((0, 0), (0xFFFF, 0xFFFF), (1, 65534))]
    # inet_ntop's forms: the extremes, IPv4 beside bytes not read, v6 zero runs, v4-mapped and -compatible
    records += [
        build(saddr=a, daddr=b) for a, b in (("0.0.0.0", "255.255.255.255"), ("127.0.0.1", "1.2.3.4"))
    ]
    records += [build(saddr=b"\x0a\0\0\x01" + b"\xff" * 12, daddr=b"\xff" * 16)]
    for addr in (
        "::",
        "::1",
        "::ffff:1.2.3.4",  # IPv4-mapped
        "::1.2.3.4",  # IPv4-compatible
        "::ffff:0:1.2.3.4",
        "64:ff9b::1.2.3.4",
        "fe80::1",
        "2001:db8::",
        "1:0:0:1:0:0:1:1",  # two zero runs of one length: the first is cut
        "1:0:1:1:1:1:1:1",  # a lone zero group
        "1:0:0:1:1:0:0:0",  # the longer, later run
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "2001:db8:85a3:8d3:1319:8a2e:370:7348",
    ):
        records += [build(family=v6, saddr=addr, daddr=addr)]
    records += [build(family=v6, saddr=b"\xff" * 16, daddr=bytes(range(16)))]
    # no owner: nothing of the task is read (pids, comm, identity), every process field null
    owner = abi.TASK_OWNER_UNKNOWN
    records += [build(task_flags=owner | f) for f in range(0, abi.TASK_FLAGS_ALL + 1)]
    records += [
        build(task_flags=owner, pid=0, tid=2**32 - 1, ppid=2**32 - 1, comm=b"c" * 16, start_ns=2**64 - 1),
        build(task_flags=owner, comm=b"\xff", cgroup_id=5),
        build(task_flags=owner | 0x10),
        build(task_flags=owner, cgroup_id=2**63),
        build(task_flags=owner, seq=2**63),
        build(task_flags=owner, type_id=0),
        build(task_flags=owner, cpu=1),
        build(task_flags=owner, established_ns=0),
        build(task_flags=owner, family=0),
        build(comm=b"\xe2\x82\xac"),
    ]
    fixed = len(build())
    records += [build()[: fixed - 1], build()[:88], b"", build() + b"\0" * 8]
    assert_each_same(event_type, records)


def test_invalid_utf8_of_every_kind_is_escaped_byte_by_byte() -> None:
    cases = [
        b"\xe2\x82\xac",  # valid: the euro sign
        b"\xe2\x82",  # cut short
        b"\xed\xa0\x80",  # a surrogate
        b"\xf4\x90\x80\x80",  # beyond U+10FFFF
        b"\xf0\x9f\x98\x80",  # valid: 4 bytes
        b"\xc0\xaf",  # overlong
        b"\xe0\x80\xaf",  # overlong, 3 bytes
        b"\xf0\x80\x80\xaf",  # overlong, 4 bytes
        b"\x80\xbf",  # continuation bytes alone
        b"\xf8\x88\x80\x80\x80",  # 5-byte form
        b"\xe2\x82\xe2\x82\xac",  # cut short, then valid
        b"\xff",
    ]
    for path in cases:
        assert_same("file_open", open_record(path=b"/" + path + b"/x"))
        assert_same("process_exit", exit_record(filename=b"/" + path + b"/x"))
        assert_same("process_exec", exec_record(filename=path, argv=[path, b"/" + path + b"/x"]))
        assert_same("process_exec", exec_record(parent_filename=path, parent_comm=path[:15]))


@pytest.mark.parametrize("event_type", sorted(NATIVE_TYPES))
def test_k8s_values_and_unresolved_pods_as_the_python_path(event_type: str) -> None:
    """k8s from the resolver's encoded dict; a pod cgroup not resolved yet: null, and counted."""
    py_pods, native_pods = Pods(), Pods()
    native = Native(native_pods)
    build = BUILDERS[event_type]
    # a pod container with labels, a sandbox, pods not resolved yet, no pod's, not known at all
    for cg in (1, 2, 7, 7, 11, 4, 5, 3, 1):
        raw = build(cgroup_id=cg)
        want = reference(event_type, raw, 0, OFFSET, py_pods)
        assert fast(event_type, raw, 0, OFFSET, py_pods) == want, cg
        assert native(event_type, raw, 0, OFFSET) == want, cg
    # the Python path counts each record of a pending pod (reader/pods.py); the engine does too
    assert py_pods.misses == [7, 7, 11]
    assert native.unresolved == 3


# identity flags too: the native encoder reads them (the owner-unknown flag is tcp's alone)
TASK_FLAGS = st.integers(0, abi.TASK_FLAGS_ALL).filter(lambda f: not f & abi.TASK_OWNER_UNKNOWN)


@settings(max_examples=300, deadline=None)
@given(COMMON, TASK_FLAGS, OPEN_FIELDS, st.sampled_from(OFFSETS))
def test_fuzz_open(c: dict[str, Any], task_flags: int, own: dict[str, Any], offset: int) -> None:
    assert_same("file_open", open_record(**own, **{**c, "task_flags": task_flags}), offsets=(offset,))


@settings(max_examples=300, deadline=None)
@given(COMMON, TASK_FLAGS, EXIT_FIELDS, st.sampled_from(OFFSETS))
def test_fuzz_exit(c: dict[str, Any], task_flags: int, own: dict[str, Any], offset: int) -> None:
    assert_same("process_exit", exit_record(**own, **{**c, "task_flags": task_flags}), offsets=(offset,))


@settings(max_examples=300, deadline=None)
@given(COMMON, TASK_FLAGS, FORK_FIELDS, st.sampled_from(OFFSETS))
def test_fuzz_fork(c: dict[str, Any], task_flags: int, own: dict[str, Any], offset: int) -> None:
    assert_same("process_fork", fork_record(**own, **{**c, "task_flags": task_flags}), offsets=(offset,))


EXEC_OPTIONS = st.sampled_from(
    [ExecOptions(), ExecOptions(include_failed=True), ExecOptions(4, 16), ExecOptions(3, 5, True)]
)


@settings(max_examples=400, deadline=None)
@given(COMMON, TASK_FLAGS, EXEC_FIELDS, EXEC_OPTIONS, st.sampled_from(OFFSETS))
def test_fuzz_exec(
    c: dict[str, Any], task_flags: int, own: dict[str, Any], opts: ExecOptions, offset: int
) -> None:
    raw = exec_record(**own, **{**c, "task_flags": task_flags})
    assert_same("process_exec", raw, offsets=(offset,), ctx=exec_context(opts))


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(TCP_TYPES),
    COMMON,
    st.integers(0, abi.TASK_FLAGS_ALL),
    TCP_FIELDS,
    st.sampled_from(OFFSETS),
)
def test_fuzz_tcp(
    event_type: str, c: dict[str, Any], task_flags: int, own: dict[str, Any], offset: int
) -> None:
    """The owner-unknown flag too: tcp's records may lack their process."""
    assert_same(
        event_type, tcp_record(event_type, **own, **{**c, "task_flags": task_flags}), offsets=(offset,)
    )


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(NATIVE_TYPES)), st.data())
def test_fuzz_corrupted_records_agree_too(event_type: str, data: st.DataObject) -> None:
    raw = bytearray(BUILDERS[event_type]())
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    assert_same(event_type, bytes(raw[: data.draw(st.integers(0, len(raw)))]))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(NATIVE_TYPES)), st.binary(max_size=400))
def test_fuzz_arbitrary_bytes_agree(event_type: str, raw: bytes) -> None:
    assert_same(event_type, raw)
