"""`python -m bench.forward`: events forwarded per second per core of `ebpf-producer forward`.

For each format (and with gzip), N real process_exec messages are written to a fresh topic first;
then the forwarder starts with the topic's backlog before it and POSTs it to a local receiver
that counts and answers 200 at once (so the figure is the forwarder's cost, not a SIEM's). Its
CPU time (user + sys, from /proc/<pid>/stat) is read when its partitions are assigned (start-up
excluded) and when the receiver has all N events:

    events/s per core = N / (CPU seconds spent between those two moments)

It runs a broker of its own (port 19092, as `python -m bench` does) unless --bootstrap names one.
The table goes to stdout and to bench-results/forward.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from producer.records import codec
from tests.support import ROOT

from .broker import OwnBroker
from .procs import process_cpu_s

CASES = (("jsonl", False), ("jsonl", True), ("elastic_bulk", False), ("splunk_hec", False))


def exec_record(i: int, cpus: int = 2) -> dict[str, Any]:
    """A process_exec as the collector writes it: a shell running a short command line."""
    return {
        "timestamp": 1_700_000_000_000_000 + i * 37,
        "boot_ns": 5_000_000_000 + i * 37_000,
        "host": "bench-node-1",
        "boot_id": "5f0c6a2e-4d0e-4b8e-9d55-0a3f3c0b1e77",
        "cpu": i % cpus,
        "seq": i // cpus,
        "pid": 10_000 + i % 30_000,
        "ppid": 1_000 + i % 50,
        "uid": 1000,
        "gid": 1000,
        "comm": "sh",
        "filename": "/usr/bin/sh",
        "argv": ["sh", "-c", f"curl -s https://example.invalid/api/v1/items/{i} | jq .name"],
        "argv_truncated": False,
        "filename_truncated": False,
        "argv_missing": False,
        "strings_escaped": False,
        "retval": 0,
        "cgroup_id": 4242 + i % 7,
        "tid": 10_000 + i % 30_000,
        "container_id": "3f2a9c0d1b7e" if i % 3 else None,
    }


def messages(n: int) -> Iterator[bytes]:
    enc = codec.Encoder(codec.load_schema("process_exec"))
    for i in range(n):
        yield enc.encode(exec_record(i))


class Receiver:
    """Counts the events of each POST and answers 200 (for _bulk: {"errors": false})."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()
        recv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body leave in two writes: without this, Nagle holds the body for the
            # client's delayed ACK (40 ms a request)
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    import gzip

                    body = gzip.decompress(body)
                lines = body.count(b"\n")
                with recv.lock:
                    recv.count += lines // 2 if b'{"create"' in body[:20] else lines
                out = b'{"errors":false}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/in"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def reset(self) -> None:
        with self.lock:
            self.count = 0

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Row:
    format: str
    gzip: bool
    events: int
    wall_s: float
    cpu_s: float

    @property
    def per_core(self) -> float:
        return self.events / self.cpu_s if self.cpu_s > 0 else 0.0


def produce(bootstrap: str, topic: str, n: int, partitions: int) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(timeout=30)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4"})
    for i, value in enumerate(messages(n)):
        while True:
            try:
                p.produce(topic, value, b"bench-node-1", partition=i % partitions)
                break
            except BufferError:
                p.poll(0.05)
    if p.flush(120):
        raise SystemExit(f"bench.forward: {topic}: the broker did not take the {n} events")


def run_case(
    bootstrap: str, recv: Receiver, fmt: str, gzip: bool, n: int, partitions: int, work: Path
) -> Row:
    prefix = f"fwdbench{uuid.uuid4().hex[:8]}"
    produce(bootstrap, f"{prefix}.process_exec", n, partitions)
    recv.reset()
    cfg = {
        "kafka": {"bootstrap_servers": bootstrap, "topic_prefix": prefix},
        "forward": {
            "url": recv.url,
            "format": fmt,
            "gzip": gzip,
            "group_id": prefix,
            "listen": "127.0.0.1:0",
        },
        "log": {"level": "info"},
    }
    path = work / f"{prefix}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log_path = work / f"{prefix}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "producer.cli", "forward", "--config", str(path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        try:
            deadline = time.monotonic() + 60
            while b"partitions_assigned" not in log_path.read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"bench.forward: the forwarder did not start:\n{log_path.read_text()}")
                time.sleep(0.01)
            cpu0, t0 = process_cpu_s(proc.pid), time.monotonic()
            while recv.count < n:
                if proc.poll() is not None or time.monotonic() > deadline + 600:
                    raise SystemExit(f"bench.forward: {recv.count} of {n} forwarded:\n{log_path.read_text()}")
                time.sleep(0.01)
            cpu1, t1 = process_cpu_s(proc.pid), time.monotonic()
        finally:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
            if proc.poll() is None:
                proc.kill()
    return Row(fmt, gzip, n, t1 - t0, cpu1 - cpu0)


def table(rows: list[Row]) -> str:
    lines = [
        "| format | gzip | events | wall s | events/s | forwarder CPU s | events/s per core | CPU µs/event |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.format} | {'yes' if r.gzip else 'no'} | {r.events} | {r.wall_s:.2f} | "
            f"{r.events / r.wall_s:,.0f} | {r.cpu_s:.2f} | {r.per_core:,.0f} | {1e6 / r.per_core:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.forward", description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=100_000, help="events per case (default 100000)")
    p.add_argument("--partitions", type=int, default=4, help="partitions of the topic (default 4)")
    p.add_argument("--bootstrap", help="an existing broker (default: a broker of its own on port 19092)")
    p.add_argument("--out", type=Path, default=ROOT / "bench-results" / "forward.md", help="the table's file")
    args = p.parse_args(argv)
    broker = None
    if args.bootstrap is None:
        broker = OwnBroker.from_env()
        broker.up()
    recv = Receiver()
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="ekp-bench-forward-") as work:
            for fmt, gz in CASES:
                row = run_case(
                    args.bootstrap or (broker.bootstrap if broker else ""),
                    recv,
                    fmt,
                    gz,
                    args.events,
                    args.partitions,
                    Path(work),
                )
                rows.append(row)
                print(json.dumps({**vars(row), "per_core": round(row.per_core)}), file=sys.stderr)
    finally:
        recv.close()
        if broker is not None:
            broker.down()
    text = table(rows)
    print(text, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    header = f"`python -m bench.forward --events {args.events} --partitions {args.partitions}`\n\n"
    args.out.write_text(header + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
