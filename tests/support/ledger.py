"""The drop ledger as a consumer reads it: the final report, and the identity every scenario checks."""

from __future__ import annotations

from typing import Any

from producer.ledger.arena import DROP_REASONS
from producer.ledger.book import sum_rows

from .kafka import consume


def final_report(bootstrap: str, prefix: str, **kw: Any) -> dict[str, Any]:
    reports = [m.value for m in consume(bootstrap, f"{prefix}.drops", idle_s=3, **kw)]
    finals = [r for r in reports if r["final"]]
    assert finals, f"no final drop report among {len(reports)} reports"
    return finals[-1]


def balance(report: dict[str, Any], event_type: str = "process_exec") -> dict[str, int]:
    return next(b for b in report["balance"] if b["event_type"] == event_type)


def counter(report: dict[str, Any], reason: str, event_type: str = "process_exec", **match: Any) -> int:
    return sum_rows(report["counters"], event_type=event_type, reason=reason, **match)


def assert_identity(report: dict[str, Any], event_type: str = "process_exec") -> dict[str, int]:
    """seen == delivered + dropped + in_flight, the drop reasons add up, and what is in flight at the end
    is in the spool (0 without one, or once it was replayed)."""
    b = balance(report, event_type)
    drops = sum(counter(report, r, event_type) for r in DROP_REASONS)
    assert b["dropped"] == drops, (b, report["counters"])
    assert b["seen"] == counter(report, "seen", event_type), b
    assert b["delivered"] == counter(report, "delivered", event_type), b
    assert b["seen"] == b["delivered"] + b["dropped"] + b["in_flight"], b
    assert b["in_flight"] == b.get("spooled", 0), b
    return b


def seqs_by_cpu(messages: list[Any]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for m in messages:
        out.setdefault(m.value["cpu"], []).append(m.value["seq"])
    return out
