"""What the tests (and the benchmark, bench/) share: where the checkout is, how to run the collector,
read its topics back and build raw kernel records.

- support.collector: `ebpf-producer run` as a real child process, its key=value log read back
- support.kafka: a test's broker, and every message of a topic, decoded (or raw)
- support.ledger: the final drop report, and the identity every scenario checks
- support.records: raw records laid out as bpf/collector.bpf.c writes them, one builder per layout
- support.load: the exec load generators (tests/load/*.c)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout
CLI = [sys.executable, "-m", "producer.cli"]
