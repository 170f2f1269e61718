"""Command line: run, check, tail, forward, print-bpf.

Every ProducerError ends the process with one line on stderr and the error's
exit code; nothing else is caught here, so a bug still shows its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import ProducerError
from . import commands, tail


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
    run.set_defaults(func=commands.run)

    chk = sub.add_parser("check", help="check privileges, tracefs, headers and the broker, then exit")
    chk.add_argument("--config", "-c")
    chk.set_defaults(func=commands.check)

    t = sub.add_parser(
        "tail",
        help="print messages of topics as JSON lines, decoded with schemas/ or the schema registry",
    )
    t.add_argument("--topic", "-t", action="append", required=True, help="topic (repeatable)")
    t.add_argument(
        "--config", "-c", help="take bootstrap servers, kafka.security and schema_registry from this config"
    )
    t.add_argument("--bootstrap-servers", "-b", help="override kafka.bootstrap_servers")
    t.add_argument("--from-beginning", action="store_true", help="start at the oldest message")
    t.add_argument("--max-messages", "-n", type=int, help="exit after this many messages")
    t.add_argument("--idle-timeout", type=float, help="exit after this many seconds without a message")
    t.add_argument(
        "--since",
        type=float,
        metavar="EPOCH_SECONDS",
        help="start at the first message at or after this time (overrides --from-beginning)",
    )
    t.add_argument(
        "--format",
        choices=("json", "brief"),
        default="json",
        help="json: one decoded message per line; brief: one short line per event or report",
    )
    t.set_defaults(func=tail.tail)

    fwd = sub.add_parser(
        "forward", help="forward the event topics, at least once, to an HTTP endpoint (SIEM, webhook)"
    )
    fwd.add_argument("--config", "-c", help="YAML config file: kafka, schema_registry and forward sections")
    fwd.set_defaults(func=commands.forward)

    pb = sub.add_parser("print-bpf", help="print the BPF sources and the exact compiler flags, then exit")
    pb.add_argument("--config", "-c")
    pb.set_defaults(func=commands.print_bpf)

    return p
