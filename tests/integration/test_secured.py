"""TLS + SASL/SCRAM against a real secured broker: connects, refuses clearly, and never leaks a secret.

The broker (tests/secure.py) takes only SASL_SSL with a client certificate; a
second listener presents a certificate for another host name.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from producer.ledger.arena import DROP_REASONS
from tests.integration.test_metrics import metric
from tests.secure import USER, SecuredBroker
from tests.support.collector import CollectorRunner, http_get, one_error_line, run_cli
from tests.support.kafka import Broker, consume, raw_messages
from tests.support.ledger import assert_identity, final_report

pytestmark = [pytest.mark.broker]


def write_config(path: Path, broker: SecuredBroker, *, bootstrap: str | None = None, **security: Any) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "kafka": {
                    "bootstrap_servers": bootstrap or broker.bootstrap,
                    "topic_prefix": f"t{uuid.uuid4().hex[:12]}",
                    "security": broker.security(**security),
                },
                "metrics": {"listen": ""},
            }
        )
    )
    return path


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"])
def test_check_connects_over_sasl_ssl(secured_broker: SecuredBroker, tmp_path: Path, mechanism: str) -> None:
    cfg = write_config(tmp_path / "c.yaml", secured_broker, sasl_mechanism=mechanism)
    p = run_cli(["check", "--config", str(cfg)])
    lines = p.stdout.splitlines()
    assert f"ok    kafka: {secured_broker.bootstrap} (1 broker)" in [
        ln.split(", created")[0] for ln in lines
    ], p
    assert (
        "ok    credentials: kafka.security.ca_file, kafka.security.cert_file, kafka.security.key_file, "
        "kafka.security.key_password_file, kafka.security.password_file" in lines
    ), p.stdout


def test_wrong_password_is_one_line_naming_authentication(
    secured_broker: SecuredBroker, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-" + secured_broker.password)
    cfg = write_config(tmp_path / "c.yaml", secured_broker, password_file=str(wrong))
    t0 = time.monotonic()
    p = run_cli(["run", "--config", str(cfg)])
    assert p.returncode == 4, p.stderr
    line = one_error_line(p)
    assert line.startswith(
        f"ebpf-producer: kafka: authentication failed at {secured_broker.bootstrap} "
        f"as '{USER}' (SCRAM-SHA-512): "
    ), line
    assert "invalid credentials" in line and "kafka.security.password_file" in line
    assert secured_broker.password not in p.stderr + p.stdout
    assert time.monotonic() - t0 < 30  # refused at the first answer, not after a connect timeout


def test_certificate_for_another_host_is_refused(secured_broker: SecuredBroker, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", secured_broker, bootstrap=secured_broker.wrong_host_bootstrap)
    p = run_cli(["run", "--config", str(cfg)])
    assert p.returncode == 4, p.stderr
    line = one_error_line(p)
    assert line.startswith(
        f"ebpf-producer: kafka: TLS with {secured_broker.wrong_host_bootstrap} failed: certificate hostname "
        "verification failed: the broker's certificate is for wrong-host.invalid, not 127.0.0.1"
    ), line


def test_verify_hostname_false_accepts_that_certificate(
    secured_broker: SecuredBroker, tmp_path: Path
) -> None:
    # The same listener, same password: it really was only the host name that was refused above.
    cfg = write_config(
        tmp_path / "c.yaml",
        secured_broker,
        bootstrap=secured_broker.wrong_host_bootstrap,
        verify_hostname=False,
    )
    p = run_cli(["check", "--config", str(cfg)])
    assert f"ok    kafka: {secured_broker.wrong_host_bootstrap} (1 broker" in p.stdout, p


def test_a_ca_that_did_not_sign_the_broker_is_refused(secured_broker: SecuredBroker, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", secured_broker, ca_file=str(secured_broker.pki.client_cert))
    p = run_cli(["run", "--config", str(cfg)])
    assert p.returncode == 4, p.stderr
    assert one_error_line(p).startswith(
        f"ebpf-producer: kafka: TLS with {secured_broker.bootstrap} failed: certificate verification failed: "
        "the broker's certificate chain is not trusted by kafka.security.ca_file"
    )


def test_no_client_certificate_is_refused(secured_broker: SecuredBroker, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", secured_broker, cert_file="", key_file="", key_password_file="")
    p = run_cli(["run", "--config", str(cfg)])
    assert p.returncode == 4, p.stderr
    assert "the broker refused our client certificate" in one_error_line(p)


def test_an_unreadable_password_file_names_key_and_path(
    secured_broker: SecuredBroker, tmp_path: Path
) -> None:
    missing = tmp_path / "nope" / "password"
    cfg = write_config(tmp_path / "c.yaml", secured_broker, password_file=str(missing))
    p = run_cli(["run", "--config", str(cfg)])
    assert p.returncode == 3, p.stderr
    assert one_error_line(p) == (
        f"ebpf-producer: kafka.security.password_file: cannot read {missing} (No such file or directory)"
    )


# -- the collector itself, over SASL_SSL --------------------------------------------------------------


def secured(broker: SecuredBroker, collector: CollectorRunner) -> dict[str, Any]:
    collector.broker = Broker(broker.bootstrap, controllable=False)
    return {"kafka": {"bootstrap_servers": broker.bootstrap, "security": broker.security()}}


@pytest.mark.kernel
def test_exec_end_to_end_over_sasl_ssl_and_no_secret_anywhere(
    secured_broker: SecuredBroker, collector: CollectorRunner, tmp_path: Path
) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    collector.start(secured(secured_broker, collector))
    port = collector.metrics_port()
    subprocess.run(["/bin/sh", "-c", "exit 0", marker], check=True)
    deadline = time.monotonic() + 20
    while metric(http_get(port, "/metrics")[1], "ebpf_producer_events_total", reason="delivered") < 1:
        assert time.monotonic() < deadline, http_get(port, "/metrics")[1]
        time.sleep(0.5)
    assert http_get(port, "/readyz")[0] == 200
    pages = [http_get(port, path)[1] for path in ("/metrics", "/readyz", "/healthz")]
    assert collector.stop() == 0

    conf = secured_broker.client_conf()
    msgs = consume(secured_broker.bootstrap, f"{collector.prefix}.process_exec", conf=conf)
    mine = [m for m in msgs if marker in m.value["argv"]]
    assert len(mine) == 1 and mine[0].value["argv"] == ["/bin/sh", "-c", "exit 0", marker]
    report = final_report(secured_broker.bootstrap, collector.prefix, conf=conf)
    assert assert_identity(report)["delivered"] == len(msgs)

    # tail reads the same topic with the same config
    config_path = str(collector.workdir / "config.yaml")
    topic = f"{collector.prefix}.process_exec"
    tail = run_cli(
        [
            "tail",
            "--config",
            config_path,
            "-t",
            topic,
            "--from-beginning",
            "--idle-timeout",
            "3",
            "-n",
            "1000",
        ]
    )
    assert tail.returncode == 0, tail.stderr
    assert any(marker in line for line in tail.stdout.splitlines() if '"schema": "process_exec"' in line)

    # No secret in the log, the endpoints, the drop reports (raw bytes) or tail's output.
    reports = raw_values(secured_broker, f"{collector.prefix}.drops")
    assert reports
    key_password = secured_broker.pki.key_password_file.read_text().strip()
    haystacks = {
        "log": collector.log().encode(),
        "endpoints": "".join(pages).encode(),
        "drop reports": b"".join(reports),
        "tail": (tail.stdout + tail.stderr).encode(),
        "config": (collector.workdir / "config.yaml").read_bytes(),
    }
    for secret in (secured_broker.password, key_password):
        for where, text in haystacks.items():
            assert secret.encode() not in text, f"a secret in the {where}"


def raw_values(broker: SecuredBroker, topic: str) -> list[bytes]:
    return [m.value for m in raw_messages(broker.bootstrap, topic, idle_s=3, conf=broker.client_conf())]


@pytest.mark.kernel
def test_credentials_refused_at_runtime(
    secured_broker: SecuredBroker, collector: CollectorRunner, tmp_path: Path
) -> None:
    """The broker stops accepting the password while the collector runs: no crash loop, not ready,
    and the ledger keeps counting (deliveries that cannot happen fail by error code)."""
    cfg = secured(secured_broker, collector)
    cfg["kafka"]["client"] = {"message.timeout.ms": 8000}
    # without a spool: with one, the collector stays ready and keeps the records (and a message
    # timeout is refused: spool.enabled sets it)
    cfg["spool"] = {"enabled": False}
    cfg["accounting"] = {"interval_s": 1}
    collector.start(cfg)
    port = collector.metrics_port()
    wait_for(lambda: http_get(port, "/readyz")[0] == 200, 30, "ready")
    try:
        secured_broker.set_password("changed-" + secured_broker.password)
        # sessions expire after connections.max.reauth.ms (5 s): then the old password is refused
        wait_for(lambda: http_get(port, "/readyz")[0] == 503, 60, "not ready once refused")

        def execs(reason: str) -> float:
            page = http_get(port, "/metrics")[1]
            return metric(page, "ebpf_producer_events_total", event_type="process_exec", reason=reason)

        before = execs("seen")
        for _ in range(20):
            subprocess.run(["/bin/true"], check=True)
        wait_for(lambda: execs("delivery_failed") >= 20, 60, "deliveries failed and counted")
        text = http_get(port, "/metrics")[1]
        assert execs("seen") >= before + 20
        assert metric(text, "ebpf_producer_reader_restarts_total") == 0, collector.log()
        assert collector.proc is not None and collector.proc.poll() is None
        assert http_get(port, "/healthz")[0] == 200
    finally:
        secured_broker.set_password(secured_broker.password)
    wait_for(lambda: http_get(port, "/readyz")[0] == 200, 60, "ready again")
    assert collector.stop() == 0
    ledger = collector.final_ledger_from_log("process_exec")
    assert ledger["seen"] == ledger["delivered"] + ledger["dropped"] and ledger["in_flight"] == 0, ledger
    assert ledger["drop_delivery_failed__MSG_TIMED_OUT"] >= 20, ledger
    # the log line's reasons add up to `dropped` (they are summed over CPUs)
    drops = [v for k, v in ledger.items() if any(re.fullmatch(f"drop_{r}(_.*)?", k) for r in DROP_REASONS)]
    assert sum(drops) == ledger["dropped"], ledger
    assert "reader_died" not in collector.log()
    assert secured_broker.password not in collector.log()


def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting: {what}")
        time.sleep(0.5)
