"""The native data plane in a real collector: the real kernel's rings, the real broker.

file_open with the processes stream, limited to this test's directory, and the spool off: the engine's
own way with a full queue (the bounded wait, then queue_full) rather than the spool's, which the ledger
and spool scenarios run. What a consumer finds must be what the Python plane gives: every open seen
delivered once, per-CPU sequences complete, the identity of the process that opened, and a final ledger
that closes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from producer.records import catalog
from producer.records.identity import boot_tag
from tests.support.collector import CollectorRunner
from tests.support.kafka import consume
from tests.support.ledger import assert_identity, counter, final_report, seqs_by_cpu

pytestmark = [pytest.mark.kernel, pytest.mark.broker]

OPENS = 20_000


def native_file_open(tmp_path: Path) -> dict[str, Any]:
    """file_open in this test's directory and the processes stream, on the native plane (required: no
    fallback), without a spool."""
    events: dict[str, Any] = {t: {"enabled": False} for t in catalog.STREAM_TYPES if t != "processes"}
    events["file_open"] = {"enabled": True, "path_prefixes": {"allow": [f"{tmp_path}/"]}}
    return {"readers": {"data_plane": "native"}, "events": events, "spool": {"enabled": False}}


def open_files(tmp_path: Path, n: int) -> int:
    """n opens of a file in tmp_path by a process of its own; its pid."""
    code = (
        "import os, sys, time\n"
        f"p = {str(tmp_path / 'f')!r}\n"
        "for i in range(int(sys.argv[1])):\n"
        "    os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))\n"
        "    if i % 200 == 0: time.sleep(0.005)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code, str(n)])
    assert p.wait(timeout=120) == 0
    return p.pid


def test_steady_file_opens_through_the_native_plane(collector: CollectorRunner, tmp_path: Path) -> None:
    collector.start(native_file_open(tmp_path))
    assert [e["data_plane"] for e in collector.log_events("reader_started")] == ["native"] * len(
        collector.reader_pids_expected()
    )
    assert collector.log_events("data_plane")[0]["active"] == "native"
    pid = open_files(tmp_path, OPENS)
    assert collector.stop() == 0

    report = final_report(collector.broker.bootstrap, collector.prefix)
    b = assert_identity(report, "file_open")
    assert b["dropped"] == 0, report["counters"]
    msgs = consume(collector.broker.bootstrap, f"{collector.prefix}.file_open", expect=b["delivered"])
    assert len(msgs) == b["delivered"]
    keys = [(m.value["cpu"], m.value["seq"]) for m in msgs]
    assert len(set(keys)) == len(keys), "duplicates in the topic"
    for cpu, seqs in seqs_by_cpu(msgs).items():
        assert sorted(seqs) == list(range(counter(report, "seen", "file_open", cpu=cpu))), cpu
    mine = [m.value for m in msgs if m.value["pid"] == pid]
    assert len(mine) >= OPENS
    first = mine[0]
    assert first["path"] == str(tmp_path / "f") and first["fd"] is not None
    assert "O_CREAT" in first["flag_names"] and first["mode"] == 0o600
    # the identity: one image, its id as records/identity.py spells it, its parent's too
    ids = {v["process_id"] for v in mine}
    assert len(ids) == 1
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    (only,) = ids
    assert only.startswith(boot_tag(boot_id) + "-") and only.endswith(f"-{pid}")
    assert first["parent_process_id"] is not None and first["parent_process_id"].endswith(f"-{os.getpid()}")
    # the processes stream, read beside the engine by reader 0: the opener's image, its exec and its exit
    procs = consume(collector.broker.bootstrap, f"{collector.prefix}.processes")
    kinds = {m.value["kind"] for m in procs if m.value["process_id"] == only}
    assert {"exec", "exit"} <= kinds, (kinds, [m.value for m in procs if m.value["pid"] == pid])
    assert_identity(report, "processes")
    assert first["k8s"] is None
