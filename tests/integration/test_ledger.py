"""The drop ledger on the real kernel and the real broker: it adds up under load, overload, outage,
crash and shutdown, and it equals what a consumer finds in the event topic.

Each test reads the final DropReport back from <prefix>.drops and every event from the flow's topic,
and checks seen == delivered + dropped with in_flight == 0, per-CPU sequence numbers without
duplicates, and the reasons the scenario must produce. Every scenario runs for each flow
(tests/support/flows.py): process_exec on the Python data plane, file_open on the native one.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import flows
from tests.support.collector import CollectorRunner, http_get
from tests.support.flows import Flow
from tests.support.kafka import Broker, Message, consume, consume_until
from tests.support.ledger import final_report, seqs_by_cpu
from tests.support.load import LoadPrograms

pytestmark = [pytest.mark.kernel, pytest.mark.broker]


@pytest.fixture(params=flows.FLOWS)
def flow(request: pytest.FixtureRequest, load_programs: LoadPrograms, tmp_path: Path) -> Iterator[Flow]:
    f = flows.make(request.param, load_programs, tmp_path)
    yield f
    f.close()


def reader_pids(c: CollectorRunner) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for ev in c.log_events("reader_started"):
        out.setdefault(int(ev["reader"]), []).append(int(ev["pid"]))
    return out


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def unique_events(msgs: list[Message]) -> set[tuple[int, int]]:
    keys = [(m.value["cpu"], m.value["seq"]) for m in msgs]
    dup = [k for k, n in Counter(keys).items() if n > 1]
    assert not dup, f"duplicates in the event topic: {dup[:10]}"
    return set(keys)


def test_steady_load_ledger_equals_the_topic(collector: CollectorRunner, flow: Flow) -> None:
    flow.start_collector(collector)
    execs = flow.run(3000, 20)
    assert collector.stop() == 0

    report = final_report(collector.broker.bootstrap, collector.prefix)
    b = flow.identity(report)
    msgs = consume(collector.broker.bootstrap, flow.topic(collector.prefix), expect=b["delivered"])
    assert b["seen"] >= execs >= 3000 * 20 * 0.9
    assert b["dropped"] == 0, report["counters"]
    assert len(msgs) == b["delivered"]
    unique_events(msgs)
    # per CPU, the sequence numbers the kernel handed out are all there, once
    for cpu, seqs in seqs_by_cpu(msgs).items():
        assert sorted(seqs) == list(range(flow.counter(report, "seen", cpu=cpu))), cpu


def test_overload_kernel_drops_are_counted_and_the_ledger_closes(
    collector: CollectorRunner, flow: Flow
) -> None:
    flow.start_collector(collector, {"readers": {"perf_pages": 1, "wakeup_events": 1}})
    pids = [p[0] for p in reader_pids(collector).values()]
    load = flow.start(0, 6)
    time.sleep(1.0)
    for pid in pids:  # a reader that cannot keep up: the rings overflow
        os.kill(pid, signal.SIGSTOP)
    time.sleep(2.0)
    for pid in pids:
        os.kill(pid, signal.SIGCONT)
    load.wait()
    assert collector.stop() == 0

    report = final_report(collector.broker.bootstrap, collector.prefix)
    b = flow.identity(report)
    submit_failed, lost = flow.counter(report, "submit_failed"), flow.counter(report, "lost")
    assert submit_failed > 0 and lost > 0, report["counters"]
    # lost samples are the user-space view of the same ring-full failures: never more than them
    assert lost <= submit_failed
    msgs = consume(collector.broker.bootstrap, flow.topic(collector.prefix), expect=b["delivered"])
    assert len(unique_events(msgs)) == b["delivered"]
    # every gap a consumer sees in the sequence numbers is a counted drop
    missing = sum(
        flow.counter(report, "seen", cpu=cpu) - len(seqs) for cpu, seqs in seqs_by_cpu(msgs).items()
    )
    assert missing == b["dropped"]


@pytest.mark.slow
def test_broker_down_30s_then_back(collector: CollectorRunner, flow: Flow, own_broker: Broker) -> None:
    # A small queue so the outage overflows it: what it refuses must be counted as queue_full (no spool:
    # tests/integration/test_spool.py has the outage with one).
    flow.start_collector(
        collector,
        {
            "kafka": {"max_block_ms": 200, "client": {"queue.buffering.max.messages": 20000}},
            "spool": {"enabled": False},
        },
    )
    port = collector.metrics_port()
    readers = [p[0] for p in reader_pids(collector).values()]
    load = flow.start(1500, 45)
    time.sleep(5)
    with own_broker.outage():
        time.sleep(15)  # by now the 20000-message queue is full
        assert http_get(port, "/readyz")[0] == 503  # Kafka unreachable: not ready, but still alive
        assert http_get(port, "/healthz")[0] == 200
        rss_full = [rss_kib(p) for p in readers]
        time.sleep(15)
        rss_later = [rss_kib(p) for p in readers]
    load.wait()
    # the queue is bounded: 15 more seconds of refused records cost no memory
    assert all(later - full < 16 * 1024 for full, later in zip(rss_full, rss_later, strict=True)), (
        rss_full,
        rss_later,
    )
    time.sleep(10)  # reconnect (librdkafka backs off up to 10 s) and deliver the backlog
    assert http_get(port, "/readyz")[0] == 200
    assert collector.stop() == 0

    report = final_report(collector.broker.bootstrap, collector.prefix)
    b = flow.identity(report)
    assert flow.counter(report, "queue_full") > 0, report["counters"]
    # everything the queue accepted was delivered: no timeouts, nothing purged at shutdown
    assert flow.counter(report, "delivery_failed") == 0 and flow.counter(report, "shutdown") == 0
    msgs = consume(collector.broker.bootstrap, flow.topic(collector.prefix), expect=b["delivered"])
    assert len(unique_events(msgs)) == len(msgs) == b["delivered"]


@pytest.mark.slow
def test_outage_longer_than_message_timeout(
    collector: CollectorRunner, flow: Flow, own_broker: Broker
) -> None:
    flow.start_collector(
        collector, {"kafka": {"client": {"message.timeout.ms": 4000}}, "spool": {"enabled": False}}
    )
    load = flow.start(1000, 20)
    time.sleep(3)
    with own_broker.outage():
        time.sleep(12)
    load.wait()
    time.sleep(8)
    assert collector.proc is not None and collector.proc.poll() is None  # still up
    assert collector.stop() == 0
    report = final_report(collector.broker.bootstrap, collector.prefix)
    b = flow.identity(report)
    timed_out = flow.counter(report, "delivery_failed", error_code="_MSG_TIMED_OUT")
    assert timed_out > 0 and timed_out == flow.counter(report, "delivery_failed"), report["counters"]
    msgs = consume(collector.broker.bootstrap, flow.topic(collector.prefix), expect=b["delivered"])
    # timed-out messages were not retried behind our back: the topic holds what was acknowledged
    assert len(unique_events(msgs)) == b["delivered"]


def test_reader_killed_is_restarted_and_its_loss_counted(collector: CollectorRunner, flow: Flow) -> None:
    # a long linger keeps records waiting in the producer, so the kill has something to lose
    flow.start_collector(collector, {"kafka": {"client": {"linger.ms": 2000}}})
    before = reader_pids(collector)
    victim, survivor = before[0][0], before[1][0]
    load = flow.start(3000, 12)
    time.sleep(4)
    os.kill(victim, signal.SIGKILL)
    collector.wait_for_log("reader_restarted", timeout=15)
    load.wait()
    time.sleep(3)
    assert collector.stop() == 0

    after = reader_pids(collector)
    assert len(after[0]) == 2 and after[0][1] != victim  # restarted
    assert after[1] == [survivor]  # the other reader never stopped
    died = collector.log_events("reader_died")
    assert len(died) == 1 and died[0]["status"] == "signal SIGKILL"

    report = final_report(collector.broker.bootstrap, collector.prefix)
    b = flow.identity(report)
    crash = flow.counter(report, "reader_crash")
    # the log line counts every event type the reader carried; the report has them by type
    all_types = sum(c["count"] for c in report["counters"] if c["reason"] == "reader_crash")
    assert crash > 0 and int(died[0]["reader_crash"]) == all_types
    assert report["reader_restarts"] == 1
    msgs = consume(collector.broker.bootstrap, flow.topic(collector.prefix), expect=b["delivered"])
    found = len(unique_events(msgs))
    # reader_crash is what the dead reader had not heard back about: some of it may have landed
    assert b["delivered"] <= found <= b["delivered"] + crash


def test_sigterm_under_load_exits_cleanly(collector: CollectorRunner, flow: Flow) -> None:
    flow.start_collector(collector)
    load = flow.start(5000, 8)
    time.sleep(3)
    t0 = time.monotonic()
    collector.signal(signal.SIGTERM)
    assert collector.wait(timeout=30) == 0
    took = time.monotonic() - t0
    load.wait()
    assert took < 20 + 5
    report = final_report(collector.broker.bootstrap, collector.prefix)
    b = flow.identity(report)
    msgs = consume(collector.broker.bootstrap, flow.topic(collector.prefix), expect=b["delivered"])
    assert len(unique_events(msgs)) == b["delivered"]


def test_ctrl_c_reaches_every_process_and_the_ledger_still_closes(
    collector: CollectorRunner, flow: Flow
) -> None:
    # A terminal's Ctrl-C signals the whole process group, readers included. Readers must leave the
    # stop to the supervisor, which detaches the programs first; otherwise records arriving after a
    # reader's final drain would be left in the rings, seen but never accounted for.
    flow.start_collector(collector)
    load = flow.start(4000, 6)
    time.sleep(2)
    assert collector.proc is not None
    os.killpg(collector.proc.pid, signal.SIGINT)
    assert collector.wait(timeout=30) == 0
    load.wait()
    report = final_report(collector.broker.bootstrap, collector.prefix)
    flow.identity(report)


@pytest.mark.slow
def test_sigterm_during_broker_outage(collector: CollectorRunner, flow: Flow, own_broker: Broker) -> None:
    timeout_s = 8
    flow.start_collector(collector, {"shutdown": {"timeout_s": timeout_s}, "spool": {"enabled": False}})
    load = flow.start(2000, 10)
    time.sleep(2)
    with own_broker.outage():
        time.sleep(3)
        t0 = time.monotonic()
        collector.signal(signal.SIGTERM)
        assert collector.wait(timeout=60) == 0
        took = time.monotonic() - t0
        load.wait()
    assert took < timeout_s + 5, took
    # the broker is down, so the final report could not be published: the log carries it
    final = collector.final_ledger_from_log(flow.event_type)
    assert final["seen"] == final["delivered"] + final["dropped"]
    assert final["in_flight"] == 0
    assert final.get("drop_shutdown", 0) > 0, final


def test_each_reader_reads_only_its_own_cpus(collector: CollectorRunner, flow: Flow) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 CPUs")
    flow.start_collector(collector, {"readers": {"cpu_groups": [[0], [1]], "pin": True}})
    threads = [threading.Thread(target=flow.run, args=(1000, 3), kwargs={"cpu": c}) for c in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert collector.stop() == 0
    report = final_report(collector.broker.bootstrap, collector.prefix)
    b = flow.identity(report)
    msgs = consume(collector.broker.bootstrap, flow.topic(collector.prefix), expect=b["delivered"])
    by_reader: dict[int, set[int]] = {}
    for m in msgs:
        by_reader.setdefault(int(m.headers["reader"]), set()).add(m.value["cpu"])
    assert by_reader == {0: {0}, 1: {1}}
    assert all(flow.counter(report, "seen", cpu=c) >= 2500 for c in (0, 1))
    # the flow's per-CPU rows, each read by its CPU's reader; the process table's shared ring (its rows per
    # CPU and cpu -1, /proc's seed) by reader 0
    mine = {(r["cpu"], r["reader"]) for r in report["counters"] if r["event_type"] == flow.event_type}
    assert mine == {(0, 0), (1, 1)}, mine
    assert {r["reader"] for r in report["counters"] if r["event_type"] == "processes"} == {0}
    assert {r["event_type"] for r in report["counters"] if r["cpu"] < 0} == {"processes"}


def test_a_lone_event_is_not_held_back_by_wakeup_batching(collector: CollectorRunner, flow: Flow) -> None:
    flow.start_collector(collector, {"readers": {"wakeup_events": 64, "max_latency_ms": 100}})
    marker = uuid.uuid4().hex
    t0 = time.monotonic()
    flow.lone_event(marker)
    # other processes of the host exec too: wait for this marker, not for the first message
    found = consume_until(
        collector.broker.bootstrap,
        flow.topic(collector.prefix),
        lambda m: flow.has_marker(m, marker),
        max_wait_s=10,
    )
    latency = time.monotonic() - t0
    assert found is not None
    # without the timer drain the record would wait for 63 more execs; with it, ~max_latency_ms + linger
    assert latency < 3.0, latency
    assert collector.stop() == 0
    assert flow.balance(final_report(collector.broker.bootstrap, collector.prefix))["in_flight"] == 0


def test_a_reader_dead_at_shutdown_still_has_its_rings_drained(
    collector: CollectorRunner, flow: Flow
) -> None:
    # The restart backoff outlasts the run: at SIGTERM the reader of CPU 0 is still dead, with records
    # waiting in its rings. The supervisor must start a reader just to drain them.
    flow.start_collector(
        collector,
        {"readers": {"cpu_groups": [[0], [1]], "restart_backoff_initial_s": 60, "restart_backoff_max_s": 60}},
    )
    victim = reader_pids(collector)[0][0]
    os.kill(victim, signal.SIGKILL)
    collector.wait_for_log("reader_died", timeout=10)
    flow.run(500 * flow.scale, 2, cpu=0)  # more than the ring holds
    assert collector.stop() == 0
    assert collector.log_events("reader_started_for_drain")
    report = final_report(collector.broker.bootstrap, collector.prefix)
    b = flow.identity(report)  # in_flight == 0: nothing left behind in the dead reader's rings
    msgs = consume(collector.broker.bootstrap, flow.topic(collector.prefix), expect=b["delivered"])
    on_cpu0 = sum(1 for m in msgs if m.value["cpu"] == 0)
    # what the ring held (64 pages: several hundred records) was delivered; the overflow was counted
    assert on_cpu0 == flow.counter(report, "delivered", cpu=0) >= 300
    assert flow.counter(report, "submit_failed", cpu=0) > 0
    assert flow.counter(report, "seen", cpu=0) == on_cpu0 + flow.counter(report, "submit_failed", cpu=0)
