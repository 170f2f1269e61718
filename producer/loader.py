"""Compile, check, configure and attach the BPF programs in bpf/, and read their ledger counters.

One BPF module, bpf/collector.bpf.c; each event type is compiled in only when
enabled. Parameters reach the C code as -D flags built from the config
(`ebpf-producer print-bpf` shows them); the source text is never edited.

Order at start, so that no event is counted before a reader can take it:
compile -> compare struct layouts -> fill the filter maps and seed what
happened before us (parents, listeners) -> open the perf buffers (perfbuf)
-> attach. At stop: detach first, then the readers drain.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import structlog

from . import events, procfs
from .config import EVENT_TYPES, Config
from .containers import ContainerResolver
from .errors import BpfError, ConfigError, LayoutDriftError
from .ledger import KernelCounts
from .resources import BPF_FILES, BPF_SOURCE, require

log = structlog.get_logger("loader")

FILTER_ALLOW, FILTER_DENY = 1, 2
_ALLOW_BITS = {"comm": 1 << 0, "uid": 1 << 1, "pid": 1 << 2, "cgroup": 1 << 3}
_PATH_ALLOW = 1 << 4


def perf_table(event_type: str) -> str:
    return f"ekp_events_{event_type}"


def cflags(cfg: Config, bpf_dir: Path | None = None) -> list[str]:
    d = bpf_dir or require("bpf", BPF_FILES)
    ev = cfg.events
    return [
        f"-I{d}",
        *(f"-DEKP_ENABLE_{name.upper()}={int(getattr(ev, name).enabled)}" for name in EVENT_TYPES),
        f"-DEKP_MAX_ARGS={ev.process_exec.max_args}",
        f"-DEKP_MAX_ARG_LEN={ev.process_exec.max_arg_len}",
        f"-DEKP_EXEC_INCLUDE_FAILED={int(ev.process_exec.include_failed)}",
        f"-DEKP_OPEN_INCLUDE_FAILED={int(ev.file_open.include_failed)}",
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


class Loader:
    """Owns the compiled module for the life of the supervisor."""

    def __init__(self, cfg: Config, bpf_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.bpf_dir = bpf_dir or require("bpf", BPF_FILES)
        self.bpf: Any = None
        self.tracepoints: list[str] = []

    def compile(self) -> None:
        src = self.bpf_dir / BPF_SOURCE
        try:
            self.bpf = _bpf_class()(src_file=str(src).encode(), cflags=cflags(self.cfg, self.bpf_dir))
        except BpfError:
            raise
        except Exception as e:  # BCC raises bare Exception; the compiler already printed why
            raise BpfError(f"bpf: compiling {src} failed ({e}); the compiler's messages are above") from None
        log.info("bpf_compiled", source=str(src), event_types=list(self.cfg.events.streams()))

    def table(self, name: str) -> Any:
        return self.bpf[name.encode()]

    def check_layouts(self) -> None:
        """Refuse to run if producer/events.py and the compiled C structs disagree."""
        for map_name, layout in events.LAYOUT_MAPS.items():
            compare_layout(layout, self.table(map_name).Leaf)

    def seed(self) -> dict[str, int]:
        """Fill the maps with what happened before we attached: parents, and listening sockets."""
        counts = {"parents": _fill(self.table("ekp_parents"), procfs.parents())}
        ev = self.cfg.events
        if ev.tcp_accept.enabled or ev.tcp_close.enabled or ev.tcp_connect.enabled:
            counts["listeners"] = self._seed_listeners()
        return counts

    def _seed_listeners(self) -> int:
        table = self.table("ekp_listeners")
        found = procfs.listeners()
        owners = procfs.socket_owners({li.inode for li in found})
        n = 0
        for li in found:
            pid = owners.get(li.inode)
            info = procfs.info(pid) if pid else None
            if info is None:
                continue
            leaf = table.Leaf()
            leaf.pid = leaf.tid = info.pid
            leaf.ppid, leaf.uid, leaf.gid = info.ppid, info.uid, info.gid
            leaf.comm = info.comm.encode()[:15]
            leaf.cgroup_id = _cgroup_id_of(pid) if pid else 0
            table[table.Key(li.family << 16 | li.port)] = leaf
            n += 1
        return n

    def apply_filters(self, excluded_pids: set[int], resolver: ContainerResolver) -> dict[str, int]:
        """Load filters.* and the file_open path prefixes into the kernel's filter maps."""
        f = self.cfg.filters
        flags = 0
        sizes: dict[str, int] = {}
        cgroup_allow = [_cgroup_id(v, resolver, "allow") for v in f.cgroup.allow]
        cgroup_deny = [_cgroup_id(v, resolver, "deny") for v in f.cgroup.deny]
        lists: dict[str, tuple[Iterable[Any], Iterable[Any]]] = {
            "comm": (f.comm.allow, f.comm.deny),
            "uid": (f.uid.allow, f.uid.deny),
            "pid": (f.pid.allow, (*f.pid.deny, *sorted(excluded_pids - set(f.pid.allow)))),
            "cgroup": (cgroup_allow, cgroup_deny),
        }
        for name, (allow, deny) in lists.items():
            table = self.table(f"ekp_filter_{name}")
            table.clear()
            entries = [(v, FILTER_ALLOW) for v in allow] + [(v, FILTER_DENY) for v in deny]
            for value, action in entries:
                table[_filter_key(table, name, value)] = ct.c_uint8(action)
            if list(allow):
                flags |= _ALLOW_BITS[name]
            sizes[name] = len(entries)
        prefixes = self.cfg.events.file_open.path_prefixes
        if prefixes.allow:
            flags |= _PATH_ALLOW
        lengths = sorted({len(p.encode()) for p in (*prefixes.allow, *prefixes.deny)})
        if self.cfg.events.file_open.enabled:
            table = self.table("ekp_filter_prefix")
            for p, action in [(p, FILTER_ALLOW) for p in prefixes.allow] + [
                (p, FILTER_DENY) for p in prefixes.deny
            ]:
                key = table.Key()
                key.len = len(p.encode())
                key.bytes = p.encode()
                table[key] = ct.c_uint8(action)
            lens = self.table("ekp_filter_prefix_len")
            for i, n in enumerate(lengths):
                lens[lens.Key(i)] = ct.c_uint32(n)
        cfg_table = self.table("ekp_filter_cfg")
        leaf = cfg_table.Leaf()
        leaf.flags = flags
        leaf.prefixes = len(lengths) if self.cfg.events.file_open.enabled else 0
        cfg_table[cfg_table.Key(0)] = leaf
        return sizes

    def exclude_pid(self, pid: int) -> None:
        """Deny one more pid (a reader started after the filters were applied)."""
        table = self.table("ekp_filter_pid")
        table[table.Key(pid)] = ct.c_uint8(FILTER_DENY)

    def include_pid(self, pid: int) -> None:
        """Undo exclude_pid: the pid is gone and may be reused by a process we must watch."""
        table = self.table("ekp_filter_pid")
        with contextlib.suppress(KeyError):
            del table[table.Key(pid)]

    def attach(self) -> None:
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

    def read_counters(self) -> dict[tuple[int, int], KernelCounts]:
        """(type index, cpu) -> kernel counters of the stream event types, from the per-CPU map."""
        table = self.table("ekp_counters")
        out: dict[tuple[int, int], KernelCounts] = {}
        for type_idx, name in enumerate(self.cfg.events.streams()):
            for cpu, v in enumerate(table[table.Key(events.EVENT_TYPE_IDS[name])]):
                out[(type_idx, cpu)] = KernelCounts(int(v.seen), int(v.submit_failed), int(v.filtered))
        return out

    def counters_of(self, event_type: str) -> KernelCounts:
        """All CPUs' kernel counters of one event type, summed."""
        table = self.table("ekp_counters")
        per_cpu = table[table.Key(events.EVENT_TYPE_IDS[event_type])]
        return KernelCounts(
            sum(int(v.seen) for v in per_cpu),
            sum(int(v.submit_failed) for v in per_cpu),
            sum(int(v.filtered) for v in per_cpu),
        )

    def perf_tables(self) -> dict[str, tuple[Any, str]]:
        """event type -> (BPF object, perf table name), in type-index order."""
        return {name: (self.bpf, perf_table(name)) for name in self.cfg.events.streams()}


def _fill(table: Any, pairs: Iterable[tuple[int, int]]) -> int:
    n = 0
    for key, value in pairs:
        try:
            table[table.Key(key)] = table.Leaf(value)
            n += 1
        except Exception:  # the LRU map is full or the key vanished: not worth failing a start
            break
    return n


def _filter_key(table: Any, name: str, value: Any) -> Any:
    if name == "comm":
        key = table.Key()
        key.comm = value.encode()
        return key
    return table.Key(value)


def _cgroup_id(value: int | str, resolver: ContainerResolver, which: str) -> int:
    if isinstance(value, int):
        return value
    cid = resolver.path_to_id(value)
    if cid is None:
        raise ConfigError(
            f"config: filters.cgroup.{which}: no cgroup at {value!r} (paths are relative to "
            f"{resolver.root or 'the cgroup2 mount'})"
        )
    return cid


def _cgroup_id_of(pid: int) -> int:
    """The cgroup v2 id of a process: the inode of its directory in the cgroup2 hierarchy."""
    root = procfs.cgroup2_mount()
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        if line.startswith("0::") and root is not None:
            with contextlib.suppress(OSError):
                return os.stat(root / line[3:].lstrip("/")).st_ino
    return 0


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
