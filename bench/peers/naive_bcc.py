"""The naive baseline of `python -m bench`: a single-process BCC reader of file_open.

    python bench/peers/naive_bcc.py --topic T --comm C --bootstrap HOST:PORT

What a straightforward first tool looks like, on purpose: BCC's default perf buffer
(`open_perf_buffer`, 8 pages per CPU, a wakeup per record), `table.event()` to a dict,
fastavro, one `produce()` per event with librdkafka's default settings. Its BPF side is
naive.bpf.c, its record schema naive.avsc. Prints "ready" once attached and, at exit,
"lost=N" (what the perf buffer reported lost) and "unsent=N" (what the producer queue
refused or did not flush). SIGINT or SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import ctypes as ct
import io
import json
import signal
import sys
from pathlib import Path
from typing import Any

import fastavro
from bcc import BPF
from confluent_kafka import Producer

HERE = Path(__file__).resolve().parent


class Comm(ct.Structure):
    _fields_ = [("name", ct.c_char * 16)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--topic", required=True)
    p.add_argument("--comm", required=True)
    p.add_argument("--bootstrap", required=True)
    args = p.parse_args(argv)

    stop = False

    def on_signal(_sig: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    schema = fastavro.parse_schema(json.loads((HERE / "naive.avsc").read_text()))
    producer = Producer({"bootstrap.servers": args.bootstrap})
    b = BPF(src_file=str(HERE / "naive.bpf.c"))
    b["target"][ct.c_int(0)] = Comm(args.comm.encode())
    events = b["events"]
    lost = 0
    unsent = 0

    def on_event(_cpu: int, data: Any, _size: int) -> None:
        nonlocal unsent
        e = events.event(data)
        record = {
            "boot_ns": e.boot_ns,
            "pid": e.pid,
            "tid": e.tid,
            "uid": e.uid,
            "comm": e.comm.decode(errors="replace"),
            "path": e.path.decode(errors="replace"),
            "flags": e.flags,
            "ret": e.ret,
        }
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, record)
        try:
            producer.produce(args.topic, buf.getvalue())
        except BufferError:
            # the usual answer to a full queue: serve delivery reports, try once more
            producer.poll(0.5)
            try:
                producer.produce(args.topic, buf.getvalue())
            except BufferError:
                unsent += 1
        producer.poll(0)

    def on_lost(count: int) -> None:
        nonlocal lost
        lost += count

    events.open_perf_buffer(on_event, lost_cb=on_lost)
    print("ready", flush=True)
    while not stop:
        b.perf_buffer_poll(timeout=100)
    unsent += producer.flush(30)
    print(f"lost={lost} unsent={unsent}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
