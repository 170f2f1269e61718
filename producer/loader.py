"""Compile, check and attach the BPF programs in bpf/, and read their ledger counters.

One BPF module per event type (bpf/<event_type>.bpf.c): BCC generates the
tracepoint argument structs only for a module's main file. Parameters reach
the C code as -D flags built from the config (`ebpf-producer print-bpf`
shows them); the source text is never edited.

Order at start, so that no event is counted before a reader can take it:
compile -> compare struct layouts -> seed the parent map -> open the perf
buffers (perfbuf) -> attach. At stop: detach first, then the readers drain.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from . import events
from .codec import project_dir
from .config import Config
from .errors import BpfError, LayoutDriftError
from .ledger import KernelCounts

log = structlog.get_logger("loader")


@dataclass(frozen=True)
class Module:
    event_type: str
    source: str
    perf_table: str
    layout_map: str
    parents_map: str | None = None  # pid -> ppid map to seed from /proc


MODULES = {
    "process_exec": Module(
        "process_exec",
        "process_exec.bpf.c",
        "ekp_events_process_exec",
        "ekp_layout_process_exec",
        parents_map="ekp_parents",
    ),
}


def cflags(cfg: Config, bpf_dir: Path | None = None) -> list[str]:
    d = bpf_dir or project_dir("bpf")
    pe = cfg.events.process_exec
    return [
        f"-I{d}",
        f"-DEKP_MAX_ARGS={pe.max_args}",
        f"-DEKP_MAX_ARG_LEN={pe.max_arg_len}",
        f"-DEKP_EXEC_INCLUDE_FAILED={int(pe.include_failed)}",
        # BCC's own headers trip these on newer clang; they are not ours to fix.
        "-Wno-macro-redefined",
        "-Wno-unknown-warning-option",
    ]


def _bpf_class() -> Any:
    try:
        from bcc import BPF
    except ImportError as e:  # preflight reports this earlier with the fix; keep the translation here too
        from .errors import BccMissingError

        raise BccMissingError(
            f"bcc: cannot import ({e}); install python3-bpfcc (scripts/host-setup.sh)"
        ) from None

    class ManualBPF(BPF):  # type: ignore[misc]
        """BPF without auto-attach of tracepoint__* functions: we attach once buffers are open."""

        def _trace_autoload(self) -> None:
            pass

    return ManualBPF


class LoadedModule:
    def __init__(self, module: Module, bpf: Any) -> None:
        self.module = module
        self.bpf = bpf
        self.tracepoints: list[str] = []

    def functions(self) -> Iterator[str]:
        from bcc.libbcc import lib

        for i in range(lib.bpf_num_functions(self.bpf.module)):
            yield lib.bpf_function_name(self.bpf.module, i).decode()


class Loader:
    """Owns the compiled modules for the life of the supervisor."""

    def __init__(self, cfg: Config, bpf_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.bpf_dir = bpf_dir or project_dir("bpf")
        self.modules: dict[str, LoadedModule] = {}

    def compile(self) -> None:
        cls = _bpf_class()
        flags = cflags(self.cfg, self.bpf_dir)
        for name in self.cfg.events.enabled():
            m = MODULES[name]
            src = self.bpf_dir / m.source
            if not src.is_file():
                raise BpfError(f"bpf: {src} not found; set EKP_BPF_DIR to the project's bpf/ directory")
            try:
                bpf = cls(src_file=str(src).encode(), cflags=flags)
            except Exception as e:  # BCC raises bare Exception; the compiler already printed why
                raise BpfError(
                    f"bpf: compiling {src} failed ({e}); the compiler's messages are above"
                ) from None
            self.modules[name] = LoadedModule(m, bpf)
            log.info("bpf_compiled", event_type=name, source=str(src))

    def check_layouts(self) -> None:
        """Refuse to run if producer/events.py and the compiled C structs disagree."""
        for lm in self.modules.values():
            for map_name in (lm.module.layout_map, "ekp_layout_counters"):
                compare_layout(events.LAYOUT_MAPS[map_name], lm.bpf[map_name.encode()].Leaf)

    def seed_parents(self) -> int:
        """Fill ekp_parents from /proc for processes that started before us."""
        n = 0
        for lm in self.modules.values():
            if lm.module.parents_map is None:
                continue
            table = lm.bpf[lm.module.parents_map.encode()]
            for pid, ppid in _proc_parents():
                try:
                    table[table.Key(pid)] = table.Leaf(ppid)
                    n += 1
                except Exception:  # the LRU map is full or the key vanished: not worth failing a start
                    break
        return n

    def attach(self) -> None:
        for lm in self.modules.values():
            for fn in lm.functions():
                if not fn.startswith("tracepoint__"):
                    continue
                _, category, event = fn.split("__", 2)
                tp = f"{category}:{event}"
                try:
                    lm.bpf.attach_tracepoint(tp=tp.encode(), fn_name=fn.encode())
                except Exception as e:
                    raise BpfError(
                        f"bpf: attaching {fn} to {tp} failed ({e}); see the verifier log above"
                    ) from None
                lm.tracepoints.append(tp)
        log.info("bpf_attached", tracepoints=sum(len(m.tracepoints) for m in self.modules.values()))

    def detach(self) -> None:
        """Stop new events. Once this returns no program runs (tracepoint unregister waits for RCU)."""
        for lm in self.modules.values():
            for tp in lm.tracepoints:
                try:
                    lm.bpf.detach_tracepoint(tp.encode())
                except Exception as e:
                    log.warning("bpf_detach_failed", tracepoint=tp, error=str(e))
            lm.tracepoints.clear()

    @property
    def attached(self) -> bool:
        return any(lm.tracepoints for lm in self.modules.values())

    def forget_in_child(self) -> None:
        """In a forked reader: close our copies of the attachment fds without detaching.

        Otherwise a reader would keep the programs attached after the
        supervisor detached them, and events would keep arriving after the
        final drain.
        """
        for lm in self.modules.values():
            for fds in (lm.bpf.tracepoint_fds, lm.bpf.raw_tracepoint_fds):
                for fd in fds.values():
                    with contextlib.suppress(OSError):
                        os.close(fd)
                fds.clear()
            lm.tracepoints.clear()

    def read_counters(self) -> dict[tuple[int, int], KernelCounts]:
        """(type index, cpu) -> kernel counters, summed from each module's per-CPU map."""
        out: dict[tuple[int, int], KernelCounts] = {}
        for type_idx, name in enumerate(self.cfg.events.enabled()):
            lm = self.modules.get(name)
            if lm is None:
                continue
            table = lm.bpf[b"ekp_counters"]
            per_cpu = table[table.Key(events.EVENT_TYPE_IDS[name])]
            for cpu, v in enumerate(per_cpu):
                out[(type_idx, cpu)] = KernelCounts(int(v.seen), int(v.submit_failed), int(v.filtered))
        return out

    def perf_tables(self) -> dict[str, Any]:
        """event type -> (BPF object, perf table name), in type-index order."""
        return {
            name: (self.modules[name].bpf, self.modules[name].module.perf_table)
            for name in self.cfg.events.enabled()
        }


def compare_layout(mirror: events.RecordLayout, leaf: Any) -> None:
    """Raise LayoutDriftError unless every mirrored field has the compiler's offset and size."""
    compiled = dict(_flatten(leaf, "", 0))
    ours = mirror.offsets()
    problems = []
    for name, (off, size) in ours.items():
        got = compiled.get(name)
        if got is None:
            problems.append(f"{name} missing in C")
        elif got[0] != off or (size >= 0 and got[1] != size):
            problems.append(f"{name} at {got[0]}+{got[1]} in C, {off}+{size} in producer/events.py")
    extra = [n for n in compiled if n not in ours and not n.startswith("__pad")]
    if extra:
        problems.append(f"C fields not mirrored: {', '.join(extra)}")
    if problems:
        raise LayoutDriftError(
            f"bpf: struct {mirror.c_struct} drifted from producer/events.py: "
            + "; ".join(problems)
            + " (update both, and the schema)"
        )


def _flatten(ctype: Any, prefix: str, base: int) -> Iterator[tuple[str, tuple[int, int]]]:
    for fname, ftype, *_ in ctype._fields_:
        desc = getattr(ctype, fname)
        path = prefix + fname
        if isinstance(ftype, type) and issubclass(ftype, ct.Structure):
            yield from _flatten(ftype, path + ".", base + desc.offset)
        else:
            yield path, (base + desc.offset, desc.size)


def _proc_parents() -> Iterator[tuple[int, int]]:
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_bytes()
        except OSError:
            continue
        # comm may hold spaces and parentheses: the fields after it start past the last ')'
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1:
            yield int(entry.name), int(fields[1])


def online_cpus() -> list[int]:
    from bcc.utils import get_online_cpus

    return list(get_online_cpus())


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def cpu_groups(cfg: Config, cpus: Sequence[int]) -> list[tuple[int, ...]]:
    """Split the online CPUs into reader groups as configured."""
    from .errors import ConfigError

    r = cfg.readers
    if r.cpu_groups is not None:
        missing = sorted(set(cpus) - {c for g in r.cpu_groups for c in g})
        offline = sorted({c for g in r.cpu_groups for c in g} - set(cpus))
        if offline:
            raise ConfigError(
                f"config: readers.cpu_groups: CPUs {offline} are not online (online: {list(cpus)})"
            )
        if missing:
            raise ConfigError(
                f"config: readers.cpu_groups: online CPUs {missing} are in no group; "
                "their events would never be read"
            )
        return [tuple(g) for g in r.cpu_groups]
    n = min(len(cpus), r.max_auto) if r.count == "auto" else int(r.count)
    n = max(1, min(n, len(cpus)))
    groups: list[list[int]] = [[] for _ in range(n)]
    for i, cpu in enumerate(sorted(cpus)):
        groups[i % n].append(cpu)
    return [tuple(g) for g in groups]
