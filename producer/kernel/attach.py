"""Attach the programs to their tracepoints, detach them, and let go of them in a forked reader."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import structlog

from ..errors import BpfError

log = structlog.get_logger("loader")


class Attachment:
    def __init__(self, bpf: Any) -> None:
        self.bpf = bpf
        self.tracepoints: list[str] = []

    def attach(self) -> None:
        """Every tracepoint__<category>__<event> function the module compiled, to its tracepoint."""
        from bcc.libbcc import lib

        for i in range(lib.bpf_num_functions(self.bpf.module)):
            fn = lib.bpf_function_name(self.bpf.module, i).decode()
            if not fn.startswith("tracepoint__"):
                continue
            _, category, event = fn.split("__", 2)
            tp = f"{category}:{event}"
            try:
                self.bpf.attach_tracepoint(tp=tp.encode(), fn_name=fn.encode())
            except Exception as e:
                raise BpfError(
                    f"bpf: attaching {fn} to {tp} failed ({e}); see the verifier log above"
                ) from None
            self.tracepoints.append(tp)
        log.info("bpf_attached", tracepoints=len(self.tracepoints))

    def detach(self) -> None:
        """Stop new events. Once this returns no program runs (tracepoint unregister waits for RCU)."""
        for tp in self.tracepoints:
            try:
                self.bpf.detach_tracepoint(tp.encode())
            except Exception as e:
                log.warning("bpf_detach_failed", tracepoint=tp, error=str(e))
        self.tracepoints.clear()

    @property
    def attached(self) -> bool:
        return bool(self.tracepoints)

    def forget_in_child(self) -> None:
        """In a forked reader: close our copies of the attachment fds without detaching.

        Otherwise a reader would keep the programs attached after the
        supervisor detached them, and events would keep arriving after the
        final drain.
        """
        for fds in (self.bpf.tracepoint_fds, self.bpf.raw_tracepoint_fds):
            for fd in fds.values():
                with contextlib.suppress(OSError):
                    os.close(fd)
            fds.clear()
        self.tracepoints.clear()
