"""The ledger's arithmetic and the crash journal, with the real arena and a fake kernel."""

from __future__ import annotations

from producer.ledger import arena as ledger
from producer.ledger.arena import Arena, Journal
from producer.ledger.book import KernelCounts, Ledger, sum_rows


def _ledger() -> Ledger:
    return Ledger(Arena(readers=2, types=1, cpus=2), ["process_exec"], [(0,), (1,)])


def test_identity_from_kernel_and_reader_counts() -> None:
    lg = _ledger()
    w = lg.arena.words
    b0, b1 = lg.arena.base(0, 0, 0), lg.arena.base(1, 0, 1)
    w[b0 + ledger.PRODUCED] = 90
    w[b0 + ledger.DELIVERED] = 80
    w[b0 + ledger.delivery_slot("_MSG_TIMED_OUT")] = 5
    w[b0 + ledger.DECODE_ERROR] = 3
    w[b0 + ledger.LOST] = 7  # informational: the same events as submit_failed
    w[b1 + ledger.PRODUCED] = 50
    w[b1 + ledger.DELIVERED] = 50
    w[b1 + ledger.QUEUE_FULL] = 4
    kernel = {(0, 0): KernelCounts(seen=110, submit_failed=7, filtered=2), (0, 1): KernelCounts(60, 0, 0)}
    snap = lg.snapshot(lambda: kernel)
    b = snap.balances["process_exec"]
    assert (b.seen, b.delivered, b.filtered) == (170, 130, 2)
    assert b.dropped == 7 + 3 + 5 + 4
    assert b.in_flight == 170 - 130 - 19 == 21  # 5 still in producer queues + 10 + 6 in rings
    assert snap.get("process_exec", "lost") == 7
    assert snap.get("process_exec", "delivery_failed") == 5
    rows = lg.counter_records(snap)
    assert {
        "event_type": "process_exec",
        "cpu": 0,
        "reader": 0,
        "reason": "delivery_failed",
        "error_code": "_MSG_TIMED_OUT",
        "count": 5,
    } in rows
    assert sum_rows(rows, reason="seen") == 170
    assert all(r["count"] > 0 for r in rows)


def test_unknown_kafka_errors_land_in_other() -> None:
    assert ledger.delivery_slot("SOMETHING_NEW") == ledger.delivery_slot("other")
    assert ledger.delivery_slot("_MSG_TIMED_OUT") != ledger.delivery_slot("other")


def test_retire_counts_pending_as_reader_crash_and_keeps_totals() -> None:
    lg = _ledger()
    w = lg.arena.words
    b = lg.arena.base(0, 0, 0)
    w[b + ledger.PRODUCED] = 100
    w[b + ledger.DELIVERED] = 60
    w[b + ledger.SHUTDOWN] = 0
    w[b + ledger.delivery_slot("other")] = 10
    w[b + ledger.DECODE_ERROR] = 2
    assert lg.retire(0) == 30
    assert lg.arena.block(0, 0, 0) == [0] * ledger.N_REASONS
    # the successor counts on from zero; totals carry on
    w[b + ledger.PRODUCED] = 5
    w[b + ledger.DELIVERED] = 5
    snap = lg.snapshot(lambda: {(0, 0): KernelCounts(140, 0, 0), (0, 1): KernelCounts(0, 0, 0)})
    bal = snap.balances["process_exec"]
    assert snap.get("process_exec", "reader_crash") == 30
    assert bal.delivered == 65
    assert bal.dropped == 30 + 10 + 2
    assert bal.in_flight == 140 - 65 - 42


def _journal(arena: Arena) -> Journal:
    return Journal(arena, 0, 0)


def test_journal_after_a_clean_count_marks_that_record() -> None:
    lg = _ledger()
    a = lg.arena
    j = _journal(a)
    j.count(41, a.base(0, 0, 0) + ledger.PRODUCED)
    j.count(42, a.base(0, 0, 0) + ledger.PRODUCED)
    lg.retire(0)
    # died after counting 42 but maybe before the ring moved on: skip 42 if it comes again
    assert a.words[a.suspect_index(0, 0)] == 43


def test_journal_crash_between_count_and_done() -> None:
    a = _ledger().arena
    w = a.words
    _done, intent, slot, old = a.journal_indices(0, 0)
    counter = a.base(0, 0, 0) + ledger.PRODUCED
    _journal(a).count(10, counter)  # done = 11
    # the next record, 11: journal written and counted, then killed before `done`
    w[slot], w[old], w[intent] = counter, w[counter], 12
    w[counter] += 1
    a.settle_journal(0, 0)
    assert w[a.suspect_index(0, 0)] == 12


def test_journal_crash_before_the_count() -> None:
    a = _ledger().arena
    w = a.words
    _done, intent, slot, old = a.journal_indices(0, 0)
    counter = a.base(0, 0, 0) + ledger.PRODUCED
    _journal(a).count(10, counter)
    # the next record: journal written, killed before counting: it must be counted by the successor
    w[slot], w[old], w[intent] = counter, w[counter], 12
    a.settle_journal(0, 0)
    assert w[a.suspect_index(0, 0)] == 11  # only 10 may repeat; 11 will be read and counted


def test_pending_never_counts_informational_reasons() -> None:
    block = [0] * ledger.N_REASONS
    block[ledger.PRODUCED] = 10
    block[ledger.DELIVERED] = 4
    block[ledger.LOST] = 100
    block[ledger.ESCAPED] = 3
    block[ledger.SHUTDOWN] = 1
    block[ledger.delivery_slot("MSG_SIZE_TOO_LARGE")] = 2
    assert ledger.pending(block) == 3


def test_every_row_is_a_drop_information_or_a_term_of_the_identity() -> None:
    """One table classifies the reasons (arena.py): a row the ledger writes that it does not name would
    be summed as a drop by the ledger_final line but not by the balance (or the other way round)."""
    lg = _ledger()
    w = lg.arena.words
    for reader, cpu in ((0, 0), (1, 1)):
        b = lg.arena.base(reader, 0, cpu)
        for reason in range(ledger.N_REASONS):
            w[b + reason] = 1
    w[lg.arena.crash_index(0, 0)] = 1
    snap = lg.snapshot(lambda: {(0, c): KernelCounts(99, 1, 1, 1) for c in (0, 1)})
    rows = {reason for (_, _, reason, _) in snap.counts}
    kinds = (set(ledger.DROP_REASONS), set(ledger.INFO_REASONS), set(ledger.IDENTITY_ROWS))
    assert rows <= set().union(*kinds), rows - set().union(*kinds)
    assert not (kinds[0] & kinds[1] or kinds[0] & kinds[2] or kinds[1] & kinds[2])
    assert {"untracked", "k8s_unresolved", "spooled", "spool_full", "spool_corrupt"} <= rows


def test_a_frame_spooled_but_not_yet_counted_when_all_died_is_recovered_as_spooled() -> None:
    """A spooling reader appends, then counts (its journal). A whole collector killed between the two
    leaves a frame beyond the last record counted: the recovered report counts it spooled, and the
    kernel saw at least its seq + 1, even when the supervisor's last reading is older."""
    from producer.ledger.recovery import recovered_snapshot

    lg = Ledger(Arena(readers=1, types=1, cpus=1), ["process_exec"], [(0,)])
    a = lg.arena
    journal = Journal(a, 0, 0)
    base = a.base(0, 0, 0)
    for seq in range(5):
        journal.count(seq, base + ledger.SPOOLED)
    a.store_kernel(0, 0, [3, 0, 0, 0])  # the supervisor's last reading, older than the reader's counts
    # the run was killed (RUNNING): without the spool's word, seen is seq + 1 of the last counted record
    b = recovered_snapshot(lg).balances["process_exec"]
    assert (b.seen, b.spooled, b.dropped) == (5, 5, 0)
    # the spool holds seq 5 too, the record appended but not yet counted
    b = recovered_snapshot(lg, {(0, 0): 6}).balances["process_exec"]
    assert (b.seen, b.spooled, b.dropped, b.in_flight) == (6, 6, 0, 6)
    # frames the reader did count are not counted again
    b = recovered_snapshot(lg, {(0, 0): 5}).balances["process_exec"]
    assert (b.seen, b.spooled) == (5, 5)
