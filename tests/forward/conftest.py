"""Fixtures of the forwarder's tests: the real broker, a real HTTP(S) receiver, `ebpf-producer forward`
as a child process (tests/forward/support.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.forward.httpsink import HttpSink
from tests.forward.support import ForwarderRunner
from tests.support.kafka import Broker


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    s = HttpSink()
    yield s
    s.down()


@pytest.fixture
def make_forwarder(broker: Broker, prefix: str, tmp_path: Path) -> Iterator[Any]:
    """make_forwarder(url, name=...) -> a ForwarderRunner of this test's group; killed at the end."""
    runners: list[ForwarderRunner] = []
    group = f"fwd-{uuid.uuid4().hex[:8]}"

    def make(url: str, name: str = "forwarder") -> ForwarderRunner:
        r = ForwarderRunner(broker=broker, prefix=prefix, workdir=tmp_path / name, url=url, group_id=group)
        runners.append(r)
        return r

    yield make
    for r in runners:
        r.kill()
