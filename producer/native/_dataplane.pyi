# The C extension's interface (producer/native/src/module.c, pyengine.c).
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from typing_extensions import Buffer

RUN_TIMEOUT: int
RUN_SIGNAL: int
RUN_MISS: int
RUN_FATAL: int
RUN_WATCH: int
EVENT_TYPES_MAX: int

class DecodeError(ValueError): ...
class EncodeError(ValueError): ...
class CgroupMiss(LookupError): ...  # noqa: N818 - a signal to Python, not a failure

def probe(cimpl_path: str) -> tuple[str, int, str]: ...
def layout() -> dict[str, dict[str, tuple[int, int]]]: ...

class Encoder:
    def __init__(self, tables: tuple[Any, ...]) -> None: ...
    def encode(
        self, raw: Buffer, cpu: int, boot_to_wall_ns: int, type_id: int
    ) -> tuple[bytes, bool, bool]: ...
    def set_cgroup(
        self, cgroup_id: int, container: Buffer, k8s: Buffer, ttl_ns: int = 0, unresolved: bool = False
    ) -> None: ...

class Engine:
    def __init__(
        self,
        tables: tuple[Any, ...],
        words: Buffer,
        reasons: Sequence[int],
        codes: Sequence[str],
        conf: Sequence[tuple[str, str]],
        cimpl_path: str,
        key: Buffer,
        wakeup_fd: int,
        max_block_ms: int,
        latency_ms: int,
    ) -> None: ...
    def add_ring(
        self,
        fd: int,
        pages: int,
        cpu: int,
        type_id: int,
        base: int,
        journal: tuple[int, int, int, int, int],
        topic: str,
        frame: Buffer,
        headers: Sequence[tuple[str, bytes]],
    ) -> None: ...
    def watch(self, fd: int) -> None: ...
    def run(self, ms: int) -> int: ...
    def consume(self) -> tuple[int, bool]: ...
    def close(self, deadline_ns: int) -> int: ...
    def spool(
        self,
        spooling_word: int,
        spill: Callable[[int, bytes, int, bool], bool],
        purged: Callable[[int, bytes], bool],
    ) -> None: ...
    def poll(self, ms: int) -> None: ...
    def outstanding(self) -> int: ...
    def set_cgroup(
        self, cgroup_id: int, container: Buffer, k8s: Buffer, ttl_ns: int = 0, unresolved: bool = False
    ) -> None: ...
    def set_clock(self, boot_to_wall_ns: int) -> None: ...
    def give_up_at(self, monotonic_ns: int) -> None: ...
    def take_logs(self) -> list[tuple[int, str, str]]: ...
    def stats(self) -> Mapping[str, Any]: ...
