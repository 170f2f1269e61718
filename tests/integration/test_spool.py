"""The spool on the real kernel and the real broker: outages ridden out without a loss, in order; a spool
too small counted exactly; the whole collector or its supervisor killed and restarted; a damaged frame.

They run the defaults, so the native data plane (readers.data_plane: auto); the outage runs on both.

Each test reads every drop report back from <prefix>.drops and every event from <prefix>.process_exec.
Events carry a `run_id` header: (run_id, cpu, seq) names an event (a restart counts seq from 0 again).
The broker is stopped and started for real (Broker.outage), so these run under the shared lock.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from producer.records import catalog
from producer.spool.segment import Record, SegmentReader
from producer.spool.store import list_segments, reader_dir
from tests.support.collector import CollectorRunner, http_get
from tests.support.kafka import Broker, Message, consume
from tests.support.ledger import DROP_REASONS, assert_identity, balance, counter, final_report
from tests.support.load import LoadPrograms

pytestmark = [pytest.mark.kernel, pytest.mark.broker, pytest.mark.slow]

# How long the outage test keeps the broker down: 75 s by default, the spec's 5 minutes with
# EKP_SPOOL_OUTAGE_S=300 (the rest of `make test` must fit CI's 90 minutes).
OUTAGE_S = int(os.environ.get("EKP_SPOOL_OUTAGE_S", "75"))


def metric(port: int, name: str) -> float:
    text = http_get(port, "/metrics")[1]
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


def wait_drained(port: int, timeout: float) -> float:
    """Until the spool is empty and no reader spools; returns the seconds it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if (
            metric(port, "ebpf_producer_spool_records") == 0
            and metric(port, "ebpf_producer_readers_spooling") == 0
        ):
            return time.monotonic() - t0
        time.sleep(1.0)
    raise AssertionError(f"the spool did not drain within {timeout} s")


def reports(c: CollectorRunner) -> list[dict[str, Any]]:
    return [m.value for m in consume(c.broker.bootstrap, f"{c.prefix}.drops", idle_s=3)]


def events_by_run(c: CollectorRunner, expect: int) -> dict[str, list[Message]]:
    out: dict[str, list[Message]] = defaultdict(list)
    for m in consume(c.broker.bootstrap, f"{c.prefix}.process_exec", expect=expect, idle_s=5, max_wait_s=300):
        out[m.headers["run_id"].decode()].append(m)
    return out


def keys(msgs: list[Message]) -> Counter[tuple[int, int]]:
    return Counter((m.value["cpu"], m.value["seq"]) for m in msgs)


def assert_in_order(msgs: list[Message]) -> None:
    """Per CPU, seq only grows along the partition (one partition per topic: the key is the host)."""
    last: dict[int, int] = {}
    for m in msgs:
        cpu, seq = m.value["cpu"], m.value["seq"]
        assert seq > last.get(cpu, -1), f"cpu {cpu}: seq {seq} after {last[cpu]}"
        last[cpu] = seq


def seen_by_cpu(report: dict[str, Any]) -> dict[int, int]:
    return {
        r["cpu"]: r["count"]
        for r in report["counters"]
        if r["reason"] == "seen" and r["event_type"] == "process_exec"
    }


def replayed_row(report: dict[str, Any], run_id: str) -> dict[str, Any]:
    rows = [r for r in report["replayed"] if r["run_id"] == run_id and r["event_type"] == "process_exec"]
    assert len(rows) == 1, report["replayed"]
    return rows[0]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.mark.parametrize("plane", ["native", "python"])
def test_broker_down_for_minutes_nothing_is_lost(
    collector: CollectorRunner, load_programs: LoadPrograms, own_broker: Broker, plane: str
) -> None:
    # The spec's outage is 5 minutes (EKP_SPOOL_OUTAGE_S=300); the default run uses 75 s to keep CI short.
    # 1 000 execs/s: with the fork, exit and three processes entries each, ~6 000 records/s
    rate, outage_s = 1000, OUTAGE_S
    # Bigger rings than the default: here the broker runs on the collector's own 2 cores, and when it
    # comes back its start-up and the replay's burst into it starve the readers for a moment; 64 pages
    # of process_exec at 2 000/s hold ~0.25 s and overflowed (submit_failed, counted) in that moment.
    # The processes ring (one for every CPU, read by reader 0 with its own CPU's rings) carries ~3
    # records per exec: at its default 256 pages it held ~1 s here and overflowed in that moment.
    collector.start(
        {
            "readers": {"perf_pages": 4096, "data_plane": plane},
            "events": {"processes": {"ring_pages": 16384}},
        }
    )
    port = collector.metrics_port()
    started = collector.log_events("reader_started")
    assert {(e["data_plane"], e["spool"]) for e in started} == {(plane, "True")}, started
    readers = [int(e["pid"]) for e in started]
    load = load_programs.start(rate, 10 + outage_s + 20)
    time.sleep(10)
    with own_broker.outage():
        early_s = min(60, outage_s // 3)
        time.sleep(early_s)
        assert metric(port, "ebpf_producer_readers_spooling") >= 1
        assert metric(port, "ebpf_producer_spool_bytes") > 0
        assert http_get(port, "/readyz")[0] == 200  # spooling: nothing is lost, so still ready
        rss_early = [rss_kib(p) for p in readers]
        time.sleep(outage_s - early_s)
        rss_late = [rss_kib(p) for p in readers]
        assert metric(port, "ebpf_producer_spool_oldest_age_seconds") > outage_s - 30
    # the rest of the outage cost the readers no memory: it all went to disk
    assert all(late - early < 16 * 1024 for early, late in zip(rss_early, rss_late, strict=True)), (
        rss_early,
        rss_late,
    )
    load.wait()
    drained = wait_drained(port, 180)
    assert collector.stop() == 0

    report = final_report(collector.broker.bootstrap, collector.prefix)
    print("\nnon-zero drops:", [r for r in report["counters"] if r["reason"] in DROP_REASONS and r["count"]])
    b = assert_identity(report)
    assert_identity(report, "processes")  # reader 0's shared ring went through the same spool
    assert b["dropped"] == 0 and b["in_flight"] == 0 and b["spooled"] == 0, report["counters"]
    assert b["seen"] >= rate * (outage_s + 20) * 0.9
    spooled = counter(report, "spooled")
    assert spooled >= rate * (outage_s - 10) * 0.9, spooled  # the outage went through the spool
    (msgs,) = events_by_run(collector, b["delivered"]).values()
    k = keys(msgs)
    assert len(msgs) == len(k) == b["delivered"], "duplicates, or a count that is not the topic's"
    for cpu, seen in seen_by_cpu(report).items():
        assert {s for c, s in k if c == cpu} == set(range(seen)), cpu
    assert_in_order(msgs)
    print(f"\nspooled={spooled} drained_in={drained:.1f}s replay>={spooled / max(drained, 1):.0f}/s")


def test_a_spool_smaller_than_the_outage_counts_the_rest_as_spool_full(
    collector: CollectorRunner, load_programs: LoadPrograms, own_broker: Broker
) -> None:
    # 512-page rings, as in the outage test: reader 0 also reads the processes ring (for every CPU)
    # and spools it, and the broker's restart on the same 2 cores overflowed 64 pages (submit_failed)
    collector.start({"spool": {"max_bytes": 3 << 20}, "readers": {"perf_pages": 512}})
    port = collector.metrics_port()
    load = load_programs.start(2000, 30)
    time.sleep(4)
    with own_broker.outage():
        time.sleep(20)
    load.wait()
    wait_drained(port, 120)
    assert collector.stop() == 0

    report = final_report(collector.broker.bootstrap, collector.prefix)
    b = assert_identity(report)
    assert_identity(report, "processes")
    full = counter(report, "spool_full")
    assert full > 0 and b["dropped"] == full, report["counters"]
    (msgs,) = events_by_run(collector, b["delivered"]).values()
    k = keys(msgs)
    assert len(msgs) == len(k) == b["delivered"]
    # every event missing from the topic is one the ledger counts as spool_full
    missing = sum(seen - len({s for c, s in k if c == cpu}) for cpu, seen in seen_by_cpu(report).items())
    assert missing == full
    assert_in_order(msgs)


def test_whole_collector_killed_while_spooling_then_restarted(
    collector: CollectorRunner, load_programs: LoadPrograms, own_broker: Broker
) -> None:
    collector.start()
    load = load_programs.start(1500, 14)
    time.sleep(3)
    with own_broker.outage():
        time.sleep(8)
        assert collector.proc is not None
        os.killpg(collector.proc.pid, signal.SIGKILL)  # supervisor and readers: nothing drains
        collector.proc.wait()
        load.wait()
    collector.start()  # same spool.dir: the dead run's ledger file and its spool are there
    port = collector.metrics_port()
    wait_drained(port, 120)
    assert collector.stop() == 0

    all_reports = reports(collector)
    runs = list(dict.fromkeys(r["run_id"] for r in all_reports))
    assert len(runs) == 2, runs
    dead_run, new_run = runs
    dead = [r for r in all_reports if r["run_id"] == dead_run and r["final"]]
    assert len(dead) == 1 and dead[0]["recovered"], "one recovered final report for the killed run"
    assert all_reports.index(dead[0]) < next(i for i, r in enumerate(all_reports) if r["run_id"] == new_run)
    b_dead = assert_identity(dead[0])  # in_flight == spooled: a dead collector holds only its spool
    assert b_dead["spooled"] > 0
    final = final_report(collector.broker.bootstrap, collector.prefix)
    assert final["run_id"] == new_run and not final["recovered"]
    assert_identity(final)
    row = replayed_row(final, dead_run)
    # everything the dead run left in the spool was found and delivered by the new run
    assert row["found"] >= b_dead["spooled"] and row["delivered"] == row["found"] and row["in_flight"] == 0, (
        row
    )

    by_run = events_by_run(collector, b_dead["delivered"] + row["delivered"] + balance(final)["delivered"])
    k = keys(by_run[dead_run])
    seen = seen_by_cpu(dead[0])
    assert all(s < seen[c] for c, s in k)  # nothing beyond what the ledger says the kernel saw
    missing = sum(seen[cpu] - len({s for c, s in k if c == cpu}) for cpu in seen)
    # nothing the dead run saw is missing from Kafka except what its ledger says it dropped
    assert missing <= b_dead["dropped"], (missing, dead[0]["counters"])
    assert len(k) >= b_dead["delivered"] + row["delivered"] - (row["found"] - b_dead["spooled"])
    # duplicates (a crash may leave some) carry the same identity: found as repeated keys, never as gaps
    assert_in_order([m for m in by_run[dead_run] if k[(m.value["cpu"], m.value["seq"])] == 1])


def test_supervisor_killed_under_load_its_final_report_is_recovered(
    collector: CollectorRunner, load_programs: LoadPrograms
) -> None:
    collector.start()
    load = load_programs.start(2000, 8)
    time.sleep(4)
    assert collector.proc is not None
    collector.proc.send_signal(signal.SIGKILL)  # the supervisor only: its readers drain and deliver
    collector.proc.wait()
    load.wait()
    collector.start()  # waits for the old readers (they hold the spool.dir lock) before it reads their ledger
    assert collector.stop() == 0

    all_reports = reports(collector)
    dead_run = all_reports[0]["run_id"]
    dead = [r for r in all_reports if r["run_id"] == dead_run and r["final"]]
    assert len(dead) == 1 and dead[0]["recovered"]
    b = assert_identity(dead[0])
    assert b["in_flight"] == 0 and b["dropped"] == 0, dead[0]["counters"]
    by_run = events_by_run(collector, b["delivered"])
    k = keys(by_run[dead_run])
    # the recovered report agrees with the topic exactly
    assert len(by_run[dead_run]) == len(k) == b["delivered"]
    for cpu, seen in seen_by_cpu(dead[0]).items():
        assert {s for c, s in k if c == cpu} == set(range(seen)), cpu


def test_a_damaged_frame_is_counted_and_the_frames_around_it_delivered(
    collector: CollectorRunner, load_programs: LoadPrograms, own_broker: Broker
) -> None:
    collector.start({"shutdown": {"timeout_s": 8}})
    load = load_programs.start(1000, 10)
    time.sleep(2)
    with own_broker.outage():
        time.sleep(10)
        load.wait()
        collector.signal(signal.SIGTERM)  # during the outage: what is left stays in the spool
        assert collector.wait(timeout=60) == 0
        stopped = collector.final_ledger_from_log("process_exec")
        assert stopped["in_flight"] == stopped["spooled"] > 100, stopped
        damaged = damage_one_frame(collector.spool_dir)
    collector.start()
    wait_drained(collector.metrics_port(), 60)
    assert collector.stop() == 0

    all_reports = reports(collector)
    first = all_reports[0]["run_id"]
    recovered = [r for r in all_reports if r["run_id"] == first and r["final"]]
    assert len(recovered) == 1 and recovered[0]["recovered"]  # its own could not reach the broker
    b_first = assert_identity(recovered[0])
    row = replayed_row(final_report(collector.broker.bootstrap, collector.prefix), first)
    assert row["found"] == b_first["spooled"] and row["spool_corrupt"] == 1, row
    assert row["delivered"] == row["found"] - 1 and row["in_flight"] == 0
    by_run = events_by_run(collector, b_first["delivered"] + row["delivered"])
    k = keys(by_run[first])
    assert damaged not in k  # the damaged one is the one missing...
    assert (damaged[0], damaged[1] - 1) in k and (damaged[0], damaged[1] + 1) in k  # ...not its neighbours
    assert len(by_run[first]) == b_first["delivered"] + row["delivered"]  # the topic holds what the books say
    # At least once: what was in flight when the broker went away was purged at the SIGTERM and respooled,
    # and the broker may have written it before it stopped answering (librdkafka cannot tell). Those come
    # twice, the same (cpu, seq); nothing else may.
    dups = sum(n - 1 for n in k.values())
    assert dups <= counter(recovered[0], "respooled"), (dups, recovered[0]["counters"])


def damage_one_frame(spool_dir: Path) -> tuple[int, int]:
    """Flip a byte in the value of a process_exec frame in the middle of the biggest segment; its
    (cpu, seq)."""
    segs = [p for r in range(8) for _, p in list_segments(reader_dir(spool_dir, r))]
    seg = max(segs, key=lambda p: p.stat().st_size)
    reader = SegmentReader(seg)
    exec_id = catalog.BY_NAME["process_exec"].id  # the test counts process_exec events
    records = [e for e in reader.walk() if isinstance(e, Record) and e.head.type_id == exec_id]
    reader.close()
    assert len(records) > 10, len(records)
    middle = records[len(records) // 2]
    data = bytearray(seg.read_bytes())
    at = data.find(middle.value)
    data[at + len(middle.value) // 2] ^= 0xFF
    seg.write_bytes(bytes(data))
    return middle.head.cpu, middle.head.seq
