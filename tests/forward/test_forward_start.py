"""What `ebpf-producer forward` does at start: refusals are one line and an exit code, an absent receiver
is waited for (not ready), and TLS with the test's own CA, a client certificate and a token works."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.forward.httpsink import HttpSink
from tests.forward.support import create_topic, event_id, exec_event, produce
from tests.secure import Pki
from tests.support import ROOT
from tests.support.collector import http_get, wait_ready
from tests.support.kafka import Broker

TOKEN = "tok-3f9c1d0e"  # what the receiver wants
WRONG = "wrong-7a2b44c1"


def run_forward(
    tmp_path: Path, forward: dict[str, Any], bootstrap: str = "127.0.0.1:9092"
) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "forward.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {"kafka": {"bootstrap_servers": bootstrap}, "forward": {"listen": "127.0.0.1:0", **forward}}
        )
    )
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", "forward", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def one_line(p: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr
    return lines[0]


def secret(tmp_path: Path, name: str, value: str) -> str:
    path = tmp_path / name
    path.write_text(value + "\n")
    return str(path)


def test_credentials_refused_at_start_is_one_line_and_exit_9(tmp_path: Path, pki: Pki) -> None:
    sink = HttpSink(keystore=pki.server_keystore, token=TOKEN)
    try:
        p = run_forward(
            tmp_path,
            {
                "url": sink.url,
                "tls": {"ca_file": str(pki.ca)},
                "auth": {"token_file": secret(tmp_path, "t", WRONG)},
            },
        )
    finally:
        sink.down()
    assert p.returncode == 9
    line = one_line(p)
    assert line.startswith(f"ebpf-producer: forward: {sink.url} refused the credentials (HTTP 401")
    assert "check the token in forward.auth.token_file" in line
    assert WRONG not in p.stderr + p.stdout and TOKEN not in p.stderr + p.stdout


def test_an_untrusted_certificate_at_start_is_one_line_and_exit_9(tmp_path: Path, pki: Pki) -> None:
    sink = HttpSink(keystore=pki.server_keystore)
    try:
        p = run_forward(tmp_path, {"url": sink.url})  # the system's CAs do not know the test's CA
    finally:
        sink.down()
    assert p.returncode == 9
    line = one_line(p)
    assert line.startswith(f"ebpf-producer: forward: TLS with {sink.url} failed (TLS: certificate")
    assert "unable to get local issuer certificate" in line
    assert "check forward.tls.ca_file" in line


def test_no_such_endpoint_at_start_is_one_line_and_exit_9(tmp_path: Path, sink: HttpSink) -> None:
    p = run_forward(tmp_path, {"url": sink.url.replace("/ingest", "/nope")})
    assert p.returncode == 9
    assert "has no such endpoint (HTTP 404" in one_line(p) and "check the path in forward.url" in one_line(p)


@pytest.mark.parametrize(
    ("forward", "code", "message"),
    [
        (
            {"url": "https://siem:8088/x?token=abc"},
            2,
            "forward.url: must not carry a credential in its query",
        ),
        ({"url": "siem:8088"}, 2, "forward.url: must be an http:// or https:// URL, got 'siem:8088'"),
        ({}, 2, "forward.url: required by `ebpf-producer forward`"),
        (
            {"url": "https://siem:8088/x", "auth": {"token_file": "/nonexistent/token"}},
            3,
            "forward.auth.token_file: cannot read /nonexistent/token (No such file or directory)",
        ),
        (
            {"url": "https://siem:8088/x", "tls": {"ca_file": "/nonexistent/ca.pem"}},
            3,
            "forward.tls.ca_file: cannot read /nonexistent/ca.pem",
        ),
    ],
)
def test_bad_url_or_unreadable_secret_is_one_line(
    tmp_path: Path, forward: dict[str, Any], code: int, message: str
) -> None:
    p = run_forward(tmp_path, forward)
    assert p.returncode == code
    assert message in one_line(p)
    assert "abc" not in p.stderr


@pytest.mark.broker
def test_an_unreachable_broker_at_start_is_exit_4(tmp_path: Path, sink: HttpSink) -> None:
    p = run_forward(tmp_path, {"url": sink.url}, bootstrap="127.0.0.1:1")
    assert p.returncode == 4
    assert one_line(p).startswith("ebpf-producer: kafka: no broker answered at 127.0.0.1:1")


@pytest.mark.broker
def test_an_absent_receiver_at_start_is_waited_for(broker: Broker, prefix: str, make_forwarder: Any) -> None:
    sink = HttpSink()
    sink.down()  # its port is known, nobody listens there
    try:
        create_topic(broker.bootstrap, f"{prefix}.process_exec", 1)
        produce(broker.bootstrap, f"{prefix}.process_exec", [exec_event(i) for i in range(50)])
        f = make_forwarder(sink.url)
        f.start()
        port = f.port()
        time.sleep(3)
        assert f.proc is not None and f.proc.poll() is None  # never crashes
        status, body = http_get(port, "/readyz")
        assert status == 503 and "not ready: receiver: ConnectError" in body, body
        assert http_get(port, "/healthz")[0] == 200
        assert "receiver_unreachable" in f.log()
        sink.up()
        sink.wait_for(lambda s: len(s.events()) == 50, 30, "50 events")
        assert wait_ready(port)[0] == 200
        assert sorted(sink.ids()) == sorted(event_id(i) for i in range(50))
        assert f.stop() == 0
    finally:
        sink.down()


@pytest.mark.broker
def test_tls_with_a_client_certificate_and_a_token(
    broker: Broker, prefix: str, make_forwarder: Any, pki: Pki, tmp_path: Path
) -> None:
    # The test's client key is encrypted; the forwarder takes an unencrypted PEM key (a mounted Secret).
    key = tmp_path / "client.key"
    subprocess.run(
        [
            "openssl",
            "pkey",
            "-in",
            str(pki.client_key),
            "-passin",
            f"file:{pki.key_password_file}",
            "-out",
            str(key),
        ],
        check=True,
        capture_output=True,
    )
    sink = HttpSink(keystore=pki.server_keystore, client_ca=pki.ca, token=TOKEN, scheme="Splunk")
    try:
        create_topic(broker.bootstrap, f"{prefix}.process_exec", 1)
        produce(broker.bootstrap, f"{prefix}.process_exec", [exec_event(i) for i in range(20)])
        f = make_forwarder(sink.url)
        f.start(
            {
                "forward": {
                    "format": "splunk_hec",
                    "tls": {"ca_file": str(pki.ca), "cert_file": str(pki.client_cert), "key_file": str(key)},
                    "auth": {"token_file": secret(tmp_path, "hec-token", TOKEN)},
                }
            }
        )
        sink.wait_for(lambda s: len(s.events()) == 20, 30, "20 events")
        assert {r.headers["Authorization"] for r in sink.requests} == {f"Splunk {TOKEN}"}
        assert f.stop() == 0
        assert TOKEN not in f.log()
    finally:
        sink.down()
