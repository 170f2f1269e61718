"""run, check, forward and print-bpf."""

from __future__ import annotations

import argparse
import faulthandler

from .. import config, log, resources
from ..errors import ProducerError
from ..ops import preflight


def load(args: argparse.Namespace) -> config.Config:
    cfg = config.load(getattr(args, "config", None))
    log.configure(cfg.log.level, cfg.log.format)
    return cfg


def run(args: argparse.Namespace) -> int:
    cfg = load(args)
    if args.duration is not None and args.duration <= 0:
        raise ProducerError("--duration must be > 0")
    preflight.run_all(cfg)  # raises before any BPF is loaded
    faulthandler.enable()  # a crash in C (BCC, librdkafka) still leaves a Python stack behind
    from ..ops.supervisor import Supervisor  # imports BCC

    return Supervisor(cfg, args.duration).run()


def check(args: argparse.Namespace) -> int:
    cfg = load(args)
    lines, ok = preflight.report(cfg)
    print("\n".join(lines))
    return 0 if ok else 3


def forward(args: argparse.Namespace) -> int:
    from ..forward.forwarder import Forwarder  # imports confluent-kafka, httpx and prometheus-client

    return Forwarder(load(args)).run()


def print_bpf(args: argparse.Namespace) -> int:
    cfg = load(args)
    from ..kernel.build import cflags

    bpf_dir = resources.require("bpf", resources.BPF_FILES)
    print(f"// cflags: {' '.join(cflags(cfg))}")
    for name in resources.BPF_FILES:
        print(f"\n// ---- {bpf_dir / name}\n")
        print((bpf_dir / name).read_text())
    return 0
