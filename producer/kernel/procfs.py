"""What /proc tells about processes that existed before the collector attached.

The BPF programs learn parents, listening sockets and cgroups as things
happen; these readers fill the gaps for what happened before, and find the
processes the collector must not watch (itself, a broker on this host).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    uid: int
    gid: int
    comm: str


def _stat_fields(pid: int | str) -> list[bytes] | None:
    try:
        stat = (PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # comm may hold spaces and parentheses: the fields after it start past the last ')'
    return stat[stat.rfind(b")") + 2 :].split()


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (0 when it is gone)."""
    fields = _stat_fields(pid)
    return int(fields[11]) + int(fields[12]) if fields and len(fields) > 12 else 0


@dataclass(frozen=True)
class Process:
    """A process alive now, as the process table and the processes topic want it."""

    pid: int
    ppid: int
    starttime: int  # clock ticks since boot (stat field 22)
    uid: int
    gid: int
    comm: bytes
    exe: bytes | None  # the program (/proc/<pid>/exe); None for kernel threads or when unreadable
    argv: list[bytes]  # /proc/<pid>/cmdline


def processes() -> Iterator[Process]:
    """Every process, read from /proc (one that exits meanwhile is skipped)."""
    for entry in os.scandir(PROC):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        fields = _stat_fields(pid)
        try:
            st = os.stat(PROC / entry.name)  # the owner of /proc/<pid> is its effective uid and gid
            comm = (PROC / entry.name / "comm").read_bytes().rstrip(b"\n")
            cmdline = (PROC / entry.name / "cmdline").read_bytes()
        except OSError:
            continue
        if not fields or len(fields) <= 19:
            continue
        try:
            exe: bytes | None = os.readlink(PROC / entry.name / "exe").encode("utf-8", "surrogateescape")
        except OSError:
            exe = None
        status = info(pid)
        uid, gid = (status.uid, status.gid) if status is not None else (st.st_uid, st.st_gid)
        argv = cmdline.rstrip(b"\0").split(b"\0") if cmdline else []
        yield Process(pid, int(fields[1]), int(fields[19]), uid, gid, comm, exe, argv)


def info(pid: int) -> ProcInfo | None:
    try:
        status = (PROC / str(pid) / "status").read_text()
    except OSError:
        return None
    values = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    try:
        return ProcInfo(
            pid=pid,
            ppid=int(values["PPid"]),
            uid=int(values["Uid"].split()[0]),
            gid=int(values["Gid"].split()[0]),
            comm=values["Name"].strip(),
        )
    except (KeyError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class Listener:
    family: int  # socket.AF_INET / AF_INET6
    port: int
    inode: int


def listeners() -> list[Listener]:
    """TCP sockets in LISTEN state, from /proc/net/tcp and tcp6."""
    out = []
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        try:
            lines = (PROC / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[3] == "0A":  # TCP_LISTEN
                out.append(Listener(family, int(f[1].rsplit(":", 1)[1], 16), int(f[9])))
    return out


_SOCKET = re.compile(r"socket:\[(\d+)\]")


def socket_owners(inodes: set[int]) -> dict[int, int]:
    """Socket inode -> pid of a process holding it (the first found)."""
    owners: dict[int, int] = {}
    if not inodes:
        return owners
    for entry in os.scandir(PROC):
        if not entry.name.isdigit():
            continue
        try:
            fds = os.scandir(f"/proc/{entry.name}/fd")
        except OSError:
            continue
        with fds:
            for fd in fds:
                try:
                    m = _SOCKET.fullmatch(os.readlink(fd.path))
                except OSError:
                    continue
                if m and int(m.group(1)) in inodes:
                    owners.setdefault(int(m.group(1)), int(entry.name))
    return owners


def listening_pids(ports: set[int]) -> set[int]:
    """Processes listening on any of `ports` (TCP, IPv4 or IPv6)."""
    inodes = {li.inode for li in listeners() if li.port in ports}
    return set(socket_owners(inodes).values())


def cgroup2_mount() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or .../unified in hybrid mode)."""
    try:
        lines = (PROC / "self" / "mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        pre, _, post = line.partition(" - ")
        if post.split(" ", 1)[0] == "cgroup2":
            return Path(pre.split()[4])
    return None
