"""The walking skeleton end to end: a real exec, the real kernel, the real broker, decoded with schemas/."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid

import pytest

from tests.support.collector import CollectorRunner
from tests.support.kafka import consume
from tests.support.ledger import assert_identity, final_report

pytestmark = [pytest.mark.kernel, pytest.mark.broker]


def test_an_exec_reaches_kafka_with_its_fields(collector: CollectorRunner) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    collector.start()
    child = subprocess.Popen(["/bin/sh", "-c", "exit 0", marker])
    assert child.wait() == 0
    assert collector.stop() == 0

    msgs = consume(collector.broker.bootstrap, f"{collector.prefix}.process_exec")
    mine = [m for m in msgs if marker in m.value["argv"]]
    assert len(mine) == 1, [m.value["argv"] for m in msgs]
    m = mine[0]
    v = m.value
    assert m.schema == "process_exec"
    assert v["argv"] == ["/bin/sh", "-c", "exit 0", marker]
    assert v["pid"] == child.pid
    assert v["ppid"] == os.getpid()
    assert v["uid"] == os.getuid() and v["gid"] == os.getgid()
    assert v["filename"] == "/bin/sh"
    assert v["comm"] == "sh"
    assert v["retval"] == 0
    assert not v["argv_truncated"] and not v["argv_missing"]
    assert v["host"] == socket.gethostname()
    assert m.key == socket.gethostname().encode()
    assert m.headers["event_type"] == b"process_exec"
    assert m.headers["content-type"] == b"application/vnd.apache.avro+single-object"

    report = final_report(collector.broker.bootstrap, collector.prefix)
    b = assert_identity(report)
    assert b["delivered"] == len(msgs)


def test_long_argv_is_bounded_and_flagged(collector: CollectorRunner) -> None:
    marker = f"m{uuid.uuid4().hex[:8]}"
    collector.start({"events": {"process_exec": {"max_args": 4, "max_arg_len": 16}}})
    subprocess.run(["/bin/true", marker, "b" * 40, "c", "d", "e", "f"], check=True)
    assert collector.stop() == 0
    msgs = consume(collector.broker.bootstrap, f"{collector.prefix}.process_exec")
    v = next(m.value for m in msgs if marker in m.value["argv"])
    assert v["argv"] == ["/bin/true", marker, "b" * 15, "c"]
    assert v["argv_truncated"] is True
