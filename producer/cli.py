"""Command line: run, check, tail, forward, print-bpf.

Every ProducerError ends the process with one line on stderr and the error's
exit code; nothing else is caught here, so a bug still shows its traceback.
"""

from __future__ import annotations

import argparse
import collections
import faulthandler
import json
import signal
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__, codec, config, log, preflight, registry, resources, sink
from .errors import BrokerUnreachableError, ProducerError


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ProducerError as e:
        print(f"ebpf-producer: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ebpf-producer", description="Kernel events from eBPF to Kafka, as Avro."
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="collect events and publish them and the drop ledger to Kafka")
    run.add_argument("--config", "-c", help="YAML config file (default: built-in defaults)")
    run.add_argument("--duration", type=float, help="stop cleanly after this many seconds")
    run.set_defaults(func=_run)

    chk = sub.add_parser("check", help="check privileges, tracefs, headers and the broker, then exit")
    chk.add_argument("--config", "-c")
    chk.set_defaults(func=_check)

    tail = sub.add_parser(
        "tail",
        help="print messages of topics as JSON lines, decoded with schemas/ or the schema registry",
    )
    tail.add_argument("--topic", "-t", action="append", required=True, help="topic (repeatable)")
    tail.add_argument(
        "--config", "-c", help="take bootstrap servers, kafka.security and schema_registry from this config"
    )
    tail.add_argument("--bootstrap-servers", "-b", help="override kafka.bootstrap_servers")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest message")
    tail.add_argument("--max-messages", "-n", type=int, help="exit after this many messages")
    tail.add_argument("--idle-timeout", type=float, help="exit after this many seconds without a message")
    tail.add_argument(
        "--since",
        type=float,
        metavar="EPOCH_SECONDS",
        help="start at the first message at or after this time (overrides --from-beginning)",
    )
    tail.add_argument(
        "--format",
        choices=("json", "brief"),
        default="json",
        help="json: one decoded message per line; brief: one short line per event or report",
    )
    tail.set_defaults(func=_tail)

    fwd = sub.add_parser(
        "forward", help="forward the event topics, at least once, to an HTTP endpoint (SIEM, webhook)"
    )
    fwd.add_argument("--config", "-c", help="YAML config file: kafka, schema_registry and forward sections")
    fwd.set_defaults(func=_forward)

    pb = sub.add_parser("print-bpf", help="print the BPF sources and the exact compiler flags, then exit")
    pb.add_argument("--config", "-c")
    pb.set_defaults(func=_print_bpf)

    return p


def _load(args: argparse.Namespace) -> config.Config:
    cfg = config.load(getattr(args, "config", None))
    log.configure(cfg.log.level, cfg.log.format)
    return cfg


def _run(args: argparse.Namespace) -> int:
    cfg = _load(args)
    if args.duration is not None and args.duration <= 0:
        raise ProducerError("--duration must be > 0")
    preflight.run_all(cfg)  # raises before any BPF is loaded
    faulthandler.enable()  # a crash in C (BCC, librdkafka) still leaves a Python stack behind
    from .supervisor import Supervisor  # imports BCC

    return Supervisor(cfg, args.duration).run()


def _check(args: argparse.Namespace) -> int:
    cfg = _load(args)
    lines, ok = preflight.report(cfg)
    print("\n".join(lines))
    return 0 if ok else 3


def _forward(args: argparse.Namespace) -> int:
    from .forward.forwarder import Forwarder  # imports confluent-kafka, httpx and prometheus-client

    return Forwarder(_load(args)).run()


def _print_bpf(args: argparse.Namespace) -> int:
    cfg = _load(args)
    from .loader import cflags

    bpf_dir = resources.require("bpf", resources.BPF_FILES)
    print(f"// cflags: {' '.join(cflags(cfg))}")
    for name in resources.BPF_FILES:
        print(f"\n// ---- {bpf_dir / name}\n")
        print((bpf_dir / name).read_text())
    return 0


def _tail(args: argparse.Namespace) -> int:
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, TopicPartition

    cfg = config.load(args.config) if args.config else config.validate({})
    servers = args.bootstrap_servers or cfg.kafka.bootstrap_servers
    schemas = codec.load_all()
    by_id = registry.lookup(cfg.schema_registry, schemas) if cfg.schema_registry.enabled else None
    errors: collections.deque[Any] = collections.deque(maxlen=16)  # tail may run for days
    consumer = Consumer(
        {
            **sink.connection_config(cfg.kafka, servers),
            "error_cb": errors.append,
            "group.id": f"ebpf-producer-tail-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest" if args.from_beginning else "latest",
        },
        logger=sink.LibrdkafkaLog("tail", quiet=True),
    )

    try:
        md = consumer.list_topics(timeout=10)
    except KafkaException as e:
        consumer.poll(0)  # serves error_cb: refused credentials or certificates say so
        sink.refused_connection(cfg.kafka, errors)
        raise BrokerUnreachableError(
            f"kafka: no broker answered at {servers} ({e}); start one (make kafka-up)"
        ) from None
    # Assign partitions directly rather than join a group: no rebalance wait, so
    # --idle-timeout measures silence, not a group join on a fresh broker.
    parts = []
    for topic in args.topic:
        if topic not in md.topics or md.topics[topic].error is not None:
            raise ProducerError(f"tail: topic {topic} does not exist at {servers}")
        for p in md.topics[topic].partitions:
            start = OFFSET_BEGINNING if args.from_beginning else OFFSET_END
            parts.append(
                TopicPartition(topic, p, int(args.since * 1000) if args.since is not None else start)
            )
    if args.since is not None:
        parts = consumer.offsets_for_times(parts, timeout=10)
    consumer.assign(parts)
    signal.signal(signal.SIGTERM, _interrupt)
    seen = 0
    last = time.monotonic()
    try:
        while args.max_messages is None or seen < args.max_messages:
            msg = consumer.poll(0.5)
            if msg is None:
                if args.idle_timeout is not None and time.monotonic() - last > args.idle_timeout:
                    break
                continue
            err = msg.error()
            if err is not None:
                print(json.dumps({"error": err.str(), "topic": msg.topic()}), file=sys.stderr)
                continue
            last = time.monotonic()
            seen += 1
            out = _message_json(msg, schemas, by_id)
            line = _brief(out) if args.format == "brief" else json.dumps(out, default=codec.json_default)
            print(line, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 0


def _interrupt(_sig: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _message_json(
    msg: Any, schemas: dict[bytes, codec.Schema], by_id: Callable[[int], codec.Schema | None] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset()}
    try:
        schema, record = codec.decode(msg.value() or b"", schemas, by_id)
        out["schema"] = schema.name
        out["value"] = record
    except ValueError as e:
        out["error"] = str(e)
    return out


def _brief(out: dict[str, Any]) -> str:
    v = out.get("value")
    if v is None:
        return f"{out['topic']}@{out['offset']}: {out.get('error')}"
    schema = out.get("schema")
    if schema in _BRIEF:
        ts = v["timestamp"].strftime("%H:%M:%S.%f")[:-3]
        head = f"{ts} {schema} cpu={v['cpu']} seq={v['seq']} pid={v['pid']} comm={v['comm']}"
        return f"{head} {_BRIEF[schema](v)}{' [strings_escaped]' if v['strings_escaped'] else ''}"
    if out.get("schema") == "drop_report":
        bal = ", ".join(
            f"{b['event_type']}: seen={b['seen']} delivered={b['delivered']} dropped={b['dropped']} "
            f"in_flight={b['in_flight']}"
            for b in v["balance"]
        )
        drops = ", ".join(
            f"{c['reason']}{'/' + c['error_code'] if c['error_code'] else ''}@cpu{c['cpu']}={c['count']}"
            for c in v["counters"]
            if c["reason"] not in ("seen", "delivered", "filtered")
        )
        final = " (final)" if v["final"] else ""
        return f"drop report #{v['report_seq']}{final}: {bal}; drops: {drops or 'none'}"
    return json.dumps(out, default=codec.json_default)


_BRIEF: dict[str, Any] = {
    "process_exec": lambda v: f"ppid={v['ppid']} uid={v['uid']} argv={' '.join(v['argv'])!r}",
    "process_exit": lambda v: (
        (f"exit_code={v['exit_code']}" if v["signal"] is None else f"signal={v['signal_name']}")
        + (f" lifetime={v['lifetime_ns'] / 1e9:.3f}s" if v["lifetime_ns"] is not None else "")
    ),
    "process_fork": lambda v: f"child_pid={v['child_pid']}",
    "file_open": lambda v: (
        f"{v['path']!r} {'|'.join(v['flag_names'])} -> {v['fd'] if v['fd'] is not None else v['error']}"
    ),
    "tcp_connect": lambda v: f"{v['saddr']}:{v['sport']} -> {v['daddr']}:{v['dport']}",
    "tcp_accept": lambda v: f"{v['saddr']}:{v['sport']} <- {v['daddr']}:{v['dport']}",
    "tcp_close": lambda v: (
        f"{v['saddr']}:{v['sport']} x {v['daddr']}:{v['dport']} {v['direction']} "
        f"lifetime={v['lifetime_ns'] / 1e9:.3f}s"
    ),
}


if __name__ == "__main__":
    sys.exit(main())
