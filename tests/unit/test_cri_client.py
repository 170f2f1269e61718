"""The CRI client without a runtime: error translation, socket detection, verbose info, a dead socket."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from producer.errors import CriError, CriNotFoundError, ProducerError, RuntimeUnavailableError
from producer.k8s.cri import DEFAULT_SOCKETS, CriClient, find_sockets, translate
from producer.k8s.model import verbose_info


@pytest.mark.parametrize("code", list(grpc.StatusCode))
def test_every_grpc_status_is_translated_to_one_line_naming_the_socket(code: grpc.StatusCode) -> None:
    e = translate(code, "some\ndetail", "/run/containerd/containerd.sock", "ContainerStatus", 2.0)
    assert isinstance(e, CriError) and isinstance(e, ProducerError)
    msg = str(e)
    assert "\n" not in msg
    assert "/run/containerd/containerd.sock" in msg
    assert e.exit_code == 8


def test_which_statuses_mean_what(tmp_path: Path) -> None:
    sock = tmp_path / "cri.sock"
    sock.touch()  # present: a runtime that does not answer, not a missing mount
    for code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
        e = translate(code, "connection refused", str(sock), "Version", 1.5)
        assert type(e) is RuntimeUnavailableError
        assert str(e).startswith(f"the CRI runtime at {sock} did not answer Version (")
    e = translate(grpc.StatusCode.DEADLINE_EXCEEDED, "", str(sock), "Version", 1.5)
    assert "(no reply within 1.5 s)" in str(e)
    gone = translate(grpc.StatusCode.NOT_FOUND, "x", str(sock), "PodSandboxStatus", 1)
    assert type(gone) is CriNotFoundError
    unimplemented = translate(grpc.StatusCode.UNIMPLEMENTED, "unknown service", str(sock), "Version", 1)
    assert type(unimplemented) is CriError and "CRI v1" in str(unimplemented)
    missing = translate(grpc.StatusCode.UNAVAILABLE, "", str(tmp_path / "nope.sock"), "Version", 1)
    assert str(missing).startswith(f"no CRI socket at {tmp_path / 'nope.sock'}: mount")


@pytest.fixture
def listening(tmp_path: Path) -> Iterator[list[Path]]:
    """Real unix sockets at three of the usual places under a fake host root."""
    socks = []
    paths = ["run/k3s/containerd/containerd.sock", "run/crio/crio.sock", "run/cri-dockerd.sock"]
    for rel in paths:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(p))
        socks.append(s)
    yield [tmp_path / rel for rel in paths]
    for s in socks:
        s.close()


def test_find_sockets_in_order_each_once_and_only_sockets(tmp_path: Path, listening: list[Path]) -> None:
    (tmp_path / "run/containerd").mkdir(parents=True)
    (tmp_path / "run/containerd/containerd.sock").write_text("a file, not a socket")
    (tmp_path / "var/run/crio").mkdir(parents=True)
    (tmp_path / "var/run/crio/crio.sock").symlink_to(listening[1])  # /var/run -> /run on most hosts
    assert find_sockets(tmp_path) == listening
    assert find_sockets(tmp_path, ["/run/crio/crio.sock", "/var/run/crio/crio.sock"]) == [listening[1]]


def test_detect_reports_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(RuntimeUnavailableError) as e:
        CriClient.detect(root=tmp_path)
    assert DEFAULT_SOCKETS[0] in str(e.value) and str(tmp_path) in str(e.value)


def test_detect_skips_sockets_nobody_serves(tmp_path: Path, listening: list[Path]) -> None:
    # bound but not listening: connection refused, so gRPC fails fast
    t0 = time.monotonic()
    with pytest.raises(RuntimeUnavailableError) as e:
        CriClient.detect(root=tmp_path, timeout_s=1.0)
    assert time.monotonic() - t0 < 3 * 1.5
    assert all(str(p) in str(e.value) for p in listening)


def test_a_missing_socket_fails_fast_with_the_fix(tmp_path: Path) -> None:
    with CriClient(tmp_path / "containerd.sock", timeout_s=2.0) as c:
        t0 = time.monotonic()
        with pytest.raises(RuntimeUnavailableError) as e:
            c.version()
        assert time.monotonic() - t0 < 2.5
    assert str(e.value) == f"no CRI socket at {tmp_path / 'containerd.sock'}: " + (
        "mount the node's CRI socket into the collector (hostPath) or set its path"
    )


def test_a_socket_that_accepts_but_never_answers_hits_the_deadline(tmp_path: Path) -> None:
    path = tmp_path / "hung.sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(8)  # the kernel accepts connections; nobody speaks HTTP/2
    try:
        with CriClient(path, timeout_s=0.5) as c:
            t0 = time.monotonic()
            with pytest.raises(RuntimeUnavailableError) as e:
                c.container_status("a" * 64)
            elapsed = time.monotonic() - t0
    finally:
        srv.close()
    assert 0.4 < elapsed < 1.5, elapsed
    assert "did not answer ContainerStatus (no reply within 0.5 s)" in str(e.value)


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ({"info": '{"sandboxID": "abc", "pid": 4242, "runtimeSpec": {}}'}, ("abc", 4242)),
        ({"info": '{"sandboxID": "abc", "pid": 0}'}, ("abc", None)),  # created, not started
        ({}, (None, None)),
        ({"info": "not json"}, (None, None)),
        ({"info": "[1, 2]"}, (None, None)),
        ({"info": '{"sandboxID": 7, "pid": "12"}'}, (None, None)),
    ],
)
def test_verbose_info(info: dict[str, str], expected: tuple[str | None, int | None]) -> None:
    assert verbose_info(info) == expected
