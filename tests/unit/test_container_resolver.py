"""The container resolver on a cgroup tree of the test's own: a new cgroup is found by its first records."""

from __future__ import annotations

import os
import time
from pathlib import Path

from producer.records.containers import ContainerResolver

CID = "a" * 64


def test_a_cgroup_made_just_after_a_walk_is_found_at_the_next_not_after_the_retry(tmp_path: Path) -> None:
    r = ContainerResolver(tmp_path, min_scan_s=0.05, retry_s=60.0)
    assert r.lookup(os.stat(tmp_path).st_ino) is not None  # a walk, now
    new = tmp_path / "kubepods" / CID
    new.mkdir(parents=True)
    ino = os.stat(new).st_ino
    # the walk just run may predate the cgroup: not a miss, and its answer holds only until the next walk
    assert r.lookup(ino) is None
    assert r.holds_for(ino) == 0.05
    time.sleep(0.06)
    info = r.lookup(ino)
    assert info is not None and info.container_id == CID
    assert r.holds_for(ino) == 0.0


def test_an_id_no_walk_finds_is_retried_after_retry_s(tmp_path: Path) -> None:
    r = ContainerResolver(tmp_path, min_scan_s=0.0, retry_s=0.2)
    assert r.lookup(123456789) is None  # walked, not there: a miss
    assert r.holds_for(123456789) == 0.2
    new = tmp_path / CID
    new.mkdir()
    assert r.lookup(os.stat(new).st_ino) is not None  # never looked for: walked at once
