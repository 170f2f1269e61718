"""The benchmark's broker and topics: a broker of its own, topics stamped by the broker, and the
count of what reached them.

Every benchmark topic is created with message.timestamp.type=LogAppendTime, so the timestamp a
consumer reads is the broker's append time, whatever the producer put there: latency is measured
from the event's kernel time to that, the same way for every pipeline.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from producer.kafka.consumer import new_consumer
from tests.support import ROOT

# Its own ports and data, so the shared broker on 9092 (tests, demo) never sees this load;
# scripts/kafka.sh takes the same variables.
DEFAULT_PORT = 19092
DEFAULT_CONTROLLER_PORT = 19093
DEFAULT_RUN = "/tmp/ekp-bench-kafka"


@dataclass
class OwnBroker:
    port: int
    controller_port: int
    run_dir: Path
    started: bool = False  # by us: then we stop it again

    @classmethod
    def from_env(cls) -> OwnBroker:
        e = os.environ
        return cls(
            int(e.get("EKP_KAFKA_PORT", DEFAULT_PORT)),
            int(e.get("EKP_KAFKA_CONTROLLER_PORT", DEFAULT_CONTROLLER_PORT)),
            Path(e.get("EKP_KAFKA_RUN", DEFAULT_RUN)),
        )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _script(self, action: str, *, check: bool = True) -> int:
        env = {
            **os.environ,
            "EKP_KAFKA_PORT": str(self.port),
            "EKP_KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "EKP_KAFKA_RUN": str(self.run_dir),
        }
        script = ROOT / "scripts" / "kafka.sh"
        return subprocess.run(["bash", str(script), action], env=env, check=check).returncode

    def up(self) -> None:
        self.started = self._script("status", check=False) != 0
        self._script("up")

    def down(self) -> None:
        if self.started:
            self._script("down")

    def pid(self) -> int | None:
        try:
            return int((self.run_dir / "broker.pid").read_text())
        except (OSError, ValueError):
            return None


class Topics:
    """Create, watch, read and delete the benchmark's topics (one partition each)."""

    def __init__(self, bootstrap: str) -> None:
        from confluent_kafka.admin import AdminClient

        self.bootstrap = bootstrap
        # log_level 0: their complaints when the broker stops at the end are not news; failures
        # that matter surface as exceptions of the calls
        self.admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        # only for watermarks: no group is ever joined
        self.watcher = new_consumer({"bootstrap.servers": bootstrap}, name="ekp-bench")

    def create(self, name: str) -> None:
        from confluent_kafka.cimpl import NewTopic

        topic = NewTopic(
            name, num_partitions=1, replication_factor=1, config={"message.timestamp.type": "LogAppendTime"}
        )
        self.admin.create_topics([topic], request_timeout=30)[name].result(timeout=30)

    def delete(self, names: list[str]) -> None:
        existing = set(self.admin.list_topics(timeout=10).topics)
        doomed = [n for n in names if n in existing]
        if doomed:
            for fut in self.admin.delete_topics(doomed, request_timeout=30).values():
                fut.result(timeout=30)

    def end_offset(self, name: str) -> int:
        from confluent_kafka import TopicPartition

        _low, high = self.watcher.get_watermark_offsets(TopicPartition(name, 0), timeout=10, cached=False)
        return int(high)

    def wait_drained(self, name: str, base: int, expected: int, *, idle_s: float, cap_s: float) -> float:
        """Wait until `expected` messages arrived after offset `base`, or none arrived for idle_s.

        Returns the seconds waited.
        """
        t0 = time.monotonic()
        last, last_change = -1, t0
        while time.monotonic() - t0 < cap_s:
            high = self.end_offset(name)
            if high - base >= expected:
                break
            now = time.monotonic()
            if high != last:
                last, last_change = high, now
            elif now - last_change >= idle_s:
                break
            time.sleep(0.2)
        return time.monotonic() - t0

    def read(self, name: str, each: Callable[[bytes, int], None], *, append_time: bool = True) -> int:
        """Call each(value, timestamp_ms) for every message of the topic; returns the count.

        With append_time the timestamps must be the broker's (a benchmark topic), else whatever
        the producer set (a collector's own drop report topic).
        """
        from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_LOG_APPEND_TIME, TopicPartition

        end = self.end_offset(name)
        if end == 0:
            return 0
        c = new_consumer({"bootstrap.servers": self.bootstrap}, name="ekp-bench")
        c.assign([TopicPartition(name, 0, OFFSET_BEGINNING)])
        n = 0
        deadline = time.monotonic() + 300
        try:
            while n < end and time.monotonic() < deadline:
                for m in c.consume(num_messages=10_000, timeout=1.0):
                    if m.error() is not None:
                        continue
                    kind, ts = m.timestamp()
                    if append_time and kind != TIMESTAMP_LOG_APPEND_TIME:
                        raise RuntimeError(f"topic {name}: timestamps are not the broker's append time")
                    each(m.value() or b"", ts)
                    n = int(m.offset() or 0) + 1
        finally:
            c.close()
        return n

    def close(self) -> None:
        self.watcher.close()
