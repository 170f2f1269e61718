"""The spool's files on a real filesystem: frames in order across segments, acks that outlive the
process, a torn tail, a damaged body, a damaged head, a full spool, a disk that refuses, and the
segment put in front of later frames at shutdown."""

from __future__ import annotations

import os
import resource
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from producer.spool import scan as scan_mod
from producer.spool.frame import HEAD_SIZE, Envelope, SegmentHeader, crc32c
from producer.spool.segment import Damaged, Lost, Record, SegmentReader, Torn, settle_on_disk
from producer.spool.store import Spool, list_segments, reader_dir

ENV = Envelope("t.process_exec", b"node-1", [("event_type", b"process_exec"), ("run_id", b"r1")])
ENV_BYTES = ENV.encode()
ENV_CRC = crc32c(ENV_BYTES)


def spool(d: Path, *, run: str = "r1", max_bytes: int = 1 << 30, segment_bytes: int = 4096) -> Spool:
    return Spool(
        d, SegmentHeader(run, "node-1", "boot", 0, 0), max_bytes=max_bytes, segment_bytes=segment_bytes
    )


def fill(s: Spool, n: int, *, cpu: int = 0, start: int = 0) -> None:
    for seq in range(start, start + n):
        assert s.append(0, cpu, seq, ENV_BYTES, ENV_CRC, b"value-%06d" % seq + b"x" * 100)


def drain(s: Spool) -> Iterator[tuple[Any, Any]]:
    while (item := s.next_entry()) is not None:
        yield item


def take(s: Spool) -> list[tuple[Any, Any]]:
    """Every entry, each handed over as the reader does (so its segment stays until it is settled)."""
    out = []
    while (item := s.next_entry()) is not None:
        item[0].unsettled += 1
        out.append(item)
    return out


def settle(s: Spool, items: list[tuple[Any, Any]]) -> None:
    for seg, e in items:
        seg.settle(e.head.ordinal)
        seg.unsettled -= 1
        s.release(seg)


def test_frames_come_back_in_order_across_segments_with_their_envelope(tmp_path: Path) -> None:
    s = spool(tmp_path)
    fill(s, 100)
    assert len(s.segments) > 5  # 4 KiB segments: rolled many times
    got = list(drain(s))
    assert [e.head.seq for _, e in got] == list(range(100))
    _, first = got[0]
    assert isinstance(first, Record) and Envelope.decode(first.env) == ENV
    assert first.value.startswith(b"value-000000")


def test_settled_frames_are_not_replayed_again_and_a_settled_segment_is_deleted(tmp_path: Path) -> None:
    s = spool(tmp_path)
    fill(s, 60)
    s.seal()
    settle(s, take(s)[:30])
    before = len(list_segments(tmp_path))
    s.close()
    again = spool(tmp_path)  # the next run
    assert [e.head.seq for _, e in drain(again)] == list(range(30, 60))
    assert len(list_segments(tmp_path)) <= before


def test_a_torn_tail_is_cut_back_and_counted_by_the_scan(tmp_path: Path) -> None:
    d = reader_dir(tmp_path, 0)
    s = spool(d, segment_bytes=1 << 20)
    fill(s, 10)
    s.close()
    ((_, seg),) = list_segments(d)
    whole = seg.stat().st_size
    with seg.open("r+b") as f:
        f.truncate(whole - 50)  # the last frame cut short, as by a crash mid-write
    found = scan_mod.scan(tmp_path, readers=1)
    assert found.frames[("r1", 0)] == 9 and found.torn[("r1", 0)] == 1
    assert seg.stat().st_size == whole - (HEAD_SIZE + len(ENV_BYTES) + 112)  # back to the last whole frame
    assert [e.head.seq for _, e in drain(spool(d))] == list(range(9))


def test_a_damaged_body_is_counted_against_its_type_and_cpu_and_the_rest_flows(tmp_path: Path) -> None:
    s = spool(tmp_path, segment_bytes=1 << 20)
    fill(s, 10, cpu=3)
    s.close()
    ((_, seg),) = list_segments(tmp_path)
    data = bytearray(seg.read_bytes())
    data[data.find(b"value-000004") + 3] ^= 0xFF
    seg.write_bytes(bytes(data))
    entries = [e for _, e in drain(spool(tmp_path))]
    damaged = [e for e in entries if isinstance(e, Damaged)]
    assert len(damaged) == 1 and (damaged[0].head.cpu, damaged[0].head.seq) == (3, 4)
    assert [e.head.seq for e in entries if isinstance(e, Record)] == [0, 1, 2, 3, 5, 6, 7, 8, 9]


def test_a_damaged_head_loses_that_frame_only_and_says_how_many(tmp_path: Path) -> None:
    s = spool(tmp_path, segment_bytes=1 << 20)
    fill(s, 10)
    s.close()
    ((_, seg),) = list_segments(tmp_path)
    data = bytearray(seg.read_bytes())
    at = data.find(b"value-000006") - len(ENV_BYTES) - HEAD_SIZE
    data[at + 8] ^= 0x40  # the body length: the head's checksum no longer matches
    seg.write_bytes(bytes(data))
    entries = [e for _, e in drain(spool(tmp_path))]
    assert [e for e in entries if isinstance(e, Lost)] == [Lost(6, 1)]
    assert [e.head.seq for e in entries if isinstance(e, Record)] == [0, 1, 2, 3, 4, 5, 7, 8, 9]
    assert scan_mod.scan(tmp_path.parent, 0).segments == 0  # (no reader dirs under it: nothing scanned)


def test_a_record_written_twice_in_a_row_is_replayed_once(tmp_path: Path) -> None:
    s = spool(tmp_path)
    fill(s, 3)
    fill(s, 1, start=2)  # a successor wrote its predecessor's last record again
    fill(s, 2, start=3)
    assert [e.head.seq for _, e in drain(s)] == [0, 1, 2, 3, 4]


def test_a_full_spool_refuses_and_takes_again_once_space_is_freed(tmp_path: Path) -> None:
    frame = HEAD_SIZE + len(ENV_BYTES) + 112
    s = spool(tmp_path, max_bytes=20 * frame, segment_bytes=6 * frame)
    n = 0
    while s.append(0, 0, n, ENV_BYTES, ENV_CRC, b"v" * 112):
        n += 1
    assert 10 <= n < 20 and s.bytes <= 20 * frame
    settle(s, take(s))
    assert s.append(0, 0, n, ENV_BYTES, ENV_CRC, b"v" * 112)


def test_readers_share_one_budget_each_taking_what_the_others_do_not_hold(tmp_path: Path) -> None:
    frame = HEAD_SIZE + len(ENV_BYTES) + 112
    header = SegmentHeader("r1", "node-1", "boot", 0, 0)
    spools: list[Spool] = []
    for r in (0, 1):
        spools.append(
            Spool(
                reader_dir(tmp_path, r),
                header,
                max_bytes=40 * frame,
                segment_bytes=6 * frame,
                others=lambda r=r: spools[1 - r].bytes,  # type: ignore[misc]
            )
        )
    busy, idle = spools
    n = 0
    while busy.append(0, 0, n, ENV_BYTES, ENV_CRC, b"v" * 112):
        n += 1
    assert n > 30  # an even split would have stopped it at 20: the idle reader holds nothing
    idle.refresh_limit()
    assert not idle.append(0, 1, 0, ENV_BYTES, ENV_CRC, b"v" * 112)  # the whole budget is in use
    settle(busy, take(busy))  # the busy one's first segment acknowledged and deleted
    idle.refresh_limit()
    assert idle.append(0, 1, 0, ENV_BYTES, ENV_CRC, b"v" * 112)
    assert busy.bytes + idle.bytes <= 40 * frame


def test_a_disk_that_refuses_leaves_no_torn_frame_and_is_retried(tmp_path: Path) -> None:
    s = spool(tmp_path, segment_bytes=1 << 20)
    fill(s, 5)
    size = s.writer.offset  # type: ignore[union-attr]
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 60, hard))  # the kernel refuses writes past it
    try:
        assert not s.append(0, 0, 5, ENV_BYTES, ENV_CRC, b"v" * 112)
        assert not s.append(0, 0, 6, ENV_BYTES, ENV_CRC, b"v" * 112)  # refused at once for a second
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert s.write_errors == 1
    ((_, seg),) = list_segments(tmp_path)
    assert seg.stat().st_size == size  # the partial frame was cut back
    s.refusing_until = 0.0
    fill(s, 1, start=7)
    assert [e.head.seq for _, e in drain(s)] == [0, 1, 2, 3, 4, 7]


def test_what_librdkafka_gave_back_goes_in_front_of_what_was_spooled_after_it(tmp_path: Path) -> None:
    s = spool(tmp_path)
    fill(s, 3)  # replayed earlier, not yet acknowledged
    s.start_spooling()  # the queue stalled: records 10..12 were still in librdkafka
    fill(s, 3, start=13)
    assert s.insert_segment()
    fill(s, 3, start=10)  # the purge gave 10..12 back at shutdown
    s.close()
    assert [e.head.seq for _, e in drain(spool(tmp_path))] == [0, 1, 2, 10, 11, 12, 13, 14, 15]


def test_settle_on_disk_marks_a_frame_for_every_later_reader(tmp_path: Path) -> None:
    s = spool(tmp_path, segment_bytes=1 << 20)
    fill(s, 4)
    s.close()
    ((_, seg),) = list_segments(tmp_path)
    settle_on_disk(seg, 1)  # the supervisor, for a reader that died between counting and marking
    assert [e.head.seq for _, e in drain(spool(tmp_path))] == [0, 2, 3]


def test_scan_moves_the_segments_of_readers_that_no_longer_exist_in_front(tmp_path: Path) -> None:
    for r in (0, 1, 2):
        s = spool(reader_dir(tmp_path, r), run=f"run{r}")
        fill(s, 3, cpu=r)
        s.close()
    found = scan_mod.scan(tmp_path, readers=2)
    assert not reader_dir(tmp_path, 2).exists()
    assert found.frames == {("run0", 0): 3, ("run1", 0): 3, ("run2", 0): 3}
    cpus = [e.head.cpu for _, e in drain(spool(reader_dir(tmp_path, 0)))]
    assert cpus == [2, 2, 2, 0, 0, 0]


def test_the_lock_keeps_a_second_collector_out(tmp_path: Path) -> None:
    fd = scan_mod.lock(tmp_path, wait_s=0)
    try:
        with pytest.raises(scan_mod.SpoolError, match="in use by another collector"):
            if os.fork() == 0:  # another process: flock is per open file
                try:
                    scan_mod.lock(tmp_path, wait_s=0.3)
                except scan_mod.SpoolError:
                    os._exit(3)
                os._exit(0)
            _, status = os.wait()
            if os.waitstatus_to_exitcode(status) == 3:
                raise scan_mod.SpoolError("in use by another collector")
    finally:
        os.close(fd)


def test_segment_reader_walk_reports_torn_at_the_end(tmp_path: Path) -> None:
    s = spool(tmp_path, segment_bytes=1 << 20)
    fill(s, 2)
    s.close()
    ((_, seg),) = list_segments(tmp_path)
    with seg.open("ab") as f:
        f.write(b"EKPF" + b"\0" * 10)
    r = SegmentReader(seg)
    entries = list(r.walk())
    r.close()
    assert isinstance(entries[-1], Torn) and len(entries) == 3


def test_metrics_show_what_earlier_runs_left_from_the_first_scrape(tmp_path: Path) -> None:
    # Before the first accounting tick the supervisor has no snapshot; /metrics must still say the
    # spool holds records, or whoever waits for it to drain stops waiting at once (as a CI run did).
    from producer.config.load import validate
    from producer.ops.metrics import Health
    from producer.ops.spooldir import SpoolDir

    s = spool(reader_dir(tmp_path, 0))
    fill(s, 5)
    s.close()
    health = Health()
    cfg = validate({"spool": {"enabled": True, "dir": str(tmp_path)}})
    d = SpoolDir.open(cfg, readers=1, health=health)
    try:
        assert health.spool_records == 5
        assert health.spool_bytes > 5 * 100
    finally:
        assert d.lock_fd is not None
        os.close(d.lock_fd)
