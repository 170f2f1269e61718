"""The forwarder's test support: `ebpf-producer forward` as a child process, and real framed events
written to a topic by the test (when the collector is not needed)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from producer.records import catalog, codec
from tests.support.collector import CollectorRunner, http_get
from tests.support.kafka import wait_for_topic
from tests.support.records import CTX, exec_record


@dataclass
class ForwarderRunner(CollectorRunner):
    """`ebpf-producer forward` as a real child process (the collector runner's plumbing, another command)."""

    url: str = ""
    group_id: str = ""
    starts: int = 0

    def write_config(self, overrides: Mapping[str, Any] | None = None) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        forward = {
            "url": self.url,
            "group_id": self.group_id,
            "listen": "127.0.0.1:0",
            "report_interval_s": 1,
            "drain_timeout_s": 5,
            "retry": {"backoff_initial_s": 0.2, "backoff_max_s": 2},
        }
        over = dict(overrides or {})
        forward.update(over.pop("forward", {}))
        return super().write_config({"forward": forward, **over})

    def start(self, overrides: Mapping[str, Any] | None = None, **_: Any) -> None:
        path = self.write_config(overrides)
        self.starts += 1
        self._log = self.log_path.open("ab")  # a restart appends: one log across the runs
        self.proc = subprocess.Popen(
            [*self.command, "forward", "--config", str(path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
            start_new_session=True,
        )

    def port(self) -> int:
        self.wait_for_log("forward_listening", count=self.starts)
        return int(self.log_events("forward_listening")[-1]["address"].rsplit(":", 1)[1])

    def ready(self) -> int:
        return http_get(self.port(), "/readyz")[0]

    def books(self) -> list[dict[str, str]]:
        return self.log_events("forward_books")


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        fut.result(timeout=30)
    assert wait_for_topic(bootstrap, topic), f"{topic} was created but is not in the metadata"


def exec_event(seq: int, cpu: int = 0) -> bytes:
    """A real process_exec message, framed as the collector frames it (single-object encoding)."""
    record = catalog.BY_NAME["process_exec"].decode(
        exec_record(seq=seq, cpu=cpu), cpu, CTX, 1_700_000_000_000_000_000 + seq
    )
    return codec.Encoder(codec.load_schema("process_exec")).encode(record)


def event_id(seq: int, cpu: int = 0) -> str:
    return f"{CTX.host}/{CTX.boot_id}/process_exec/{cpu}/{seq}"


def produce(bootstrap: str, topic: str, values: list[bytes], partitions: int = 1) -> None:
    """Spread over the partitions round robin; waits for every acknowledgement."""
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for i, v in enumerate(values):
        while True:
            try:
                p.produce(
                    topic,
                    v,
                    CTX.host.encode(),
                    partition=i % partitions,
                    headers=[("event_type", b"process_exec")],
                )
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(60) == 0
