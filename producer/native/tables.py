"""What the C side is handed, built from the Python definitions so that each name, code and
index keeps one definition: the encoder's tables (producer/records/), the ledger's layout
(producer/ledger/arena.py), the producer's settings (producer/kafka/client.py).

The tuples' orders are those src/module.c and src/pyengine.c parse.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from typing import Any

from ..config import KafkaConfig
from ..kafka.client import SPOOLING, client_config
from ..ledger import arena
from ..records import abi, file_open, process, process_exec, tcp
from ..records.avro import opt_string, string_
from ..records.identity import boot_tag

# errno values a file_open record may carry (file_open.parse rejects ret < -4095)
ERRNO_MAX = 4095
# C struct -> the mirror in producer/records/ that the C build must agree with
MIRRORS = {
    "ekp_process_exec": process_exec.EXEC,
    "ekp_file_open": file_open.FILE_OPEN,
    "ekp_process_exit": process.EXIT,
    "ekp_process_fork": process.FORK,
    "ekp_tcp": tcp.TCP,
}


def encoder_tables(host: str, boot_id: str, exec_opts: process_exec.ExecOptions) -> tuple[Any, ...]:
    """The encoder's constants: host and boot id, the kernel's limits, the names of file_open, exit, tcp,
    and the reader's process_exec bounds (its DecodeContext's: `exec_opts`, which parse_exec applies)."""
    if exec_opts.ancestors:
        # the native encoder writes them null: the native plane is not chosen with them (gaps)
        raise ValueError("process_exec: no native inline ancestors (events.process_exec.ancestors: 0)")

    def name_of(code: int) -> bytes | None:
        name = errno.errorcode.get(code)
        return None if name is None else name.encode()

    def signal_of(sig: int) -> bytes | None:
        name = process.signal_name(sig)
        return None if name is None else name.encode()

    return (
        string_(host.encode()) + string_(boot_id.encode()),
        boot_tag(boot_id),
        abi.PID_MAX_LIMIT,
        [string_(s.encode()) for s in file_open.OPEN_SYSCALLS.values()],
        os.O_ACCMODE,
        # the access mode's name for each of its values, O_ACCMODE_3 included
        [string_(file_open.open_flag_names(acc)[0].encode()) for acc in range(os.O_ACCMODE + 1)],
        [(string_(name.encode()), value) for name, value in file_open.OPEN_FLAG_NAMES],
        file_open.CREATING_FLAGS,
        [opt_string(name_of(code)) for code in range(ERRNO_MAX + 1)],
        # process_exit's signal_name by signal number (0 is never read: a signal is 1..EXIT_SIGNAL_MAX)
        [opt_string(signal_of(sig)) for sig in range(process.EXIT_SIGNAL_MAX + 1)],
        [(value, string_(name.encode())) for value, name in tcp.FAMILIES.items()],
        [(value, string_(name.encode())) for value, name in tcp.DIRECTIONS.items()],
        (exec_opts.max_args, exec_opts.max_arg_len, exec_opts.include_failed),
    )


def ledger_reasons() -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The arena offsets of a block's reasons, and the delivery error names with a slot of their own."""
    reasons = (
        arena.LOST,
        arena.DECODE_ERROR,
        arena.ENCODE_ERROR,
        arena.QUEUE_FULL,
        arena.SHUTDOWN,
        arena.DELIVERED,
        arena.PRODUCED,
        arena.ESCAPED,
        arena.K8S_UNRESOLVED,
        arena.SPOOLED,
        arena.SPOOL_FULL,
        arena.DELIVERY_FAILED,
    )
    return reasons, arena.DELIVERY_CODES


def producer_conf(kcfg: KafkaConfig, client_id: str, *, spool: bool = False) -> list[tuple[str, str]]:
    """The reader's librdkafka settings, exactly those of the Python path's producer, as strings."""

    def text(v: object) -> str:
        return ("true" if v else "false") if isinstance(v, bool) else str(v)

    extra = SPOOLING if spool else {}
    return [(k, text(v)) for k, v in client_config(kcfg, client_id, **extra).items()]


def layout_drift(compiled: Mapping[str, Mapping[str, tuple[int, int]]]) -> str:
    """'' when the extension reads every field where producer/records/ says it is, else what differs."""
    for struct, mirror in MIRRORS.items():
        want = mirror.offsets()
        got = compiled.get(struct, {})
        for field, (offset, size) in want.items():
            have = got.get(field)
            if have is None or have[0] != offset or (size >= 0 and have[1] != size):
                return f"{struct}.{field}: {have} in C, {(offset, size)} in the mirror"
    return ""
