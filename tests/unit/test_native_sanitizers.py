"""The native decoder and ring reader under AddressSanitizer and UBSan, fuzzed.

tests/native/harness.c drives src/records*.c, src/ring.c and src/cgroups.c without Python or
Kafka: mutated records (cut short, garbage lengths, missing NULs, random bytes), each from a
heap buffer of exactly its size, and rings of them with broken positions and record sizes.
The same harness built with a bounds check deliberately broken (-DEKP_PLANT_OOB) must be
caught, which shows the instrument sees the class of bug it is here for.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from producer.native import NATIVE_TYPES
from producer.records import abi, catalog, process, process_exec, tcp
from tests.support.records import exec_record, exit_record, fork_record, open_record, tcp_record

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "producer/native/src"
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
ENV = {**os.environ, "ASAN_OPTIONS": "abort_on_error=0:detect_leaks=1", "UBSAN_OPTIONS": "print_stacktrace=1"}
ITERATIONS = "400000"
# the native sources that need neither Python nor Kafka: the records (every family's), rings and cgroups
LIBRARY = (*sorted(p.name for p in SRC.glob("records*.c")), "ring.c", "cgroups.c")


def build(out: Path, *defines: str) -> Path:
    exe = out / ("harness" + "".join(d.replace("-D", "-") for d in defines))
    cmd = ["gcc", "-std=gnu11", "-O1", "-g", *SANITIZE, "-Wall", "-Wextra", "-Werror"]
    cmd += ["-Wno-missing-field-initializers", f"-I{ROOT / 'bpf'}", f"-I{SRC}", *defines]
    cmd += [str(ROOT / "tests/native/harness.c"), *(str(SRC / f) for f in LIBRARY)]
    subprocess.run([*cmd, "-o", str(exe)], check=True)
    return exe


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    d = tmp_path_factory.mktemp("seeds")
    records = [
        open_record(),
        open_record(path=b"/" + b"x" * 254),
        open_record(ret=-2, open_flags=os.O_CREAT | os.O_WRONLY, mode=0o644, path=b"\xff\xfe/x"),
        open_record(comm=b"\xe2\x82", task_flags=abi.TASK_PPID_UNKNOWN, cgroup_id=12345),
        open_record(task_flags=abi.TASK_PARENT_UNKNOWN, start_ns=2**62, boot_ns=2**62, pid=abi.PID_MAX_LIMIT),
        open_record(task_flags=abi.TASK_PROC_UNKNOWN, start_ns=0),
        exit_record(),
        exit_record(flags=process.EXIT_SIGNALED, signal=9, filename=b"/" + b"\xff" * 254),
        exit_record(flags=process.EXIT_START_KNOWN, fork_ns=0, filename=b"", comm=b"\xe2\x82"),
        fork_record(),
        fork_record(flags=process.FORK_UNTRACKED, child_start_ns=0, filename=b"x" * 255),
        exec_record(),
        exec_record(argv=[], flags=process_exec.EXEC_ARGV_MISSING, task_flags=abi.TASK_PROC_UNKNOWN),
        exec_record(argv=[b""] * 2, retval=-2, flags=process_exec.EXEC_FLAGS_ALL, parent_comm=b"c" * 15),
        exec_record(
            argv=[b"\xff" * 127] * 24, filename=b"/" + b"\xe2\x82" * 127, parent_filename=b"\xff" * 255
        ),
        tcp_record("tcp_connect"),
        tcp_record("tcp_accept", family=tcp.AF_INET6, saddr="::ffff:1.2.3.4", daddr="fe80::1"),
        tcp_record("tcp_close", task_flags=abi.TASK_OWNER_UNKNOWN, comm=b"c" * 16, pid=0),
        tcp_record("tcp_close", direction=tcp.TCP_INBOUND, family=tcp.AF_INET6, saddr=b"\xff" * 16),
    ]
    for i, raw in enumerate(records):
        (d / f"seed{i}").write_bytes(raw)
    return [str(d / f"seed{i}") for i in range(len(records))]


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("asan"))


def run(exe: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(exe), *args], check=False, capture_output=True, text=True, env=ENV, timeout=600
    )


def test_ring_reader_selftest_under_sanitizers(harness: Path) -> None:
    r = run(harness, "selftest")
    assert r.returncode == 0, r.stderr
    assert "selftest: ok" in r.stdout


@pytest.mark.parametrize("seed", ["1", "2", "3"])
def test_fuzz_finds_nothing(harness: Path, seeds: list[str], seed: str) -> None:
    r = run(harness, "fuzz", seed, ITERATIONS, *seeds)
    assert r.returncode == 0 and "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    encoded = int(r.stdout.split(",")[1].split()[0])
    assert 0 < encoded < int(ITERATIONS)  # both valid and malformed records were made
    by_type = dict(item.split("=") for item in r.stdout.split("by type:")[1].split())
    assert set(by_type) == {str(catalog.BY_NAME[t].id) for t in NATIVE_TYPES}  # the seeds cover them
    assert all(int(n) > 0 for n in by_type.values()), by_type  # of each type


def test_a_planted_out_of_bounds_read_is_caught(tmp_path: Path, seeds: list[str]) -> None:
    planted = build(tmp_path, "-DEKP_PLANT_OOB")  # path_size no longer checked against the record
    r = run(planted, "fuzz", "1", ITERATIONS, *seeds)
    assert r.returncode != 0
    assert "AddressSanitizer: heap-buffer-overflow" in r.stderr, r.stderr[-2000:]
    assert "decode_file_open" in r.stderr  # at the broken check's read of the path
