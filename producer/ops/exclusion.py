"""Who is not watched: the collector's own processes, and a Kafka broker on this host.

Their activity exists because of the events they carry (a reader's sends, the broker's writes), so
watching them would feed the stream with itself. Both sets change while the collector runs:
readers restart with new pids, a local broker restarts; a pid that goes away is let go again,
since pids are reused and its next owner must be watched.
"""

from __future__ import annotations

import os
import socket

from ..config import Config
from ..kernel import procfs
from ..kernel.filters import Filters


class Exclusion:
    def __init__(self, cfg: Config, host: str, filters: Filters) -> None:
        """`filters`: the kernel's filter maps, where every change goes at once (after Filters.apply)."""
        self.cfg = cfg
        self.host = host
        self.filters = filters
        self.broker_pids = self._local_broker_pids()

    def initial(self) -> set[int]:
        """The pids the filters start with: this process, and the local broker's."""
        pids = set(self.broker_pids)
        if self.cfg.filters.exclude_self:
            pids.add(os.getpid())
        return pids

    def reader_started(self, pid: int) -> None:
        if self.cfg.filters.exclude_self:
            self.filters.exclude_pid(pid)

    def watcher(self, pid: int, alive: bool) -> None:
        """The Kubernetes watcher process (ledger/containers.py) starts or ends: like a reader."""
        if alive:
            self.reader_started(pid)
        else:
            self.forget(pid)

    def forget(self, pid: int) -> None:
        """A pid we denied is gone: allow it again (unless the config itself denies it)."""
        if pid and pid not in self.cfg.filters.pid.deny:
            self.filters.include_pid(pid)

    def refresh_broker(self) -> None:
        """A restarted broker has a new pid: deny it, and let the old pid go."""
        now = self._local_broker_pids()
        for pid in now - self.broker_pids:
            self.filters.exclude_pid(pid)
        for pid in self.broker_pids - now:
            self.forget(pid)
        self.broker_pids = now

    def _local_broker_pids(self) -> set[int]:
        """Processes listening on a bootstrap port of this host, when filters.exclude_local_broker."""
        if not self.cfg.filters.exclude_local_broker:
            return set()
        local = {"127.0.0.1", "::1", "localhost", "0.0.0.0", "[::1]", socket.gethostname(), self.host}
        ports = set()
        for server in self.cfg.kafka.bootstrap_servers.split(","):
            host, _, port = server.strip().rpartition(":")
            if host in local and port.isdigit():
                ports.add(int(port))
        return procfs.listening_pids(ports) - {os.getpid()} if ports else set()
