"""Shared fixtures: a real Kafka broker, compiled load programs, a collector runner.

The broker comes from, in order: $KAFKA_BOOTSTRAP_SERVERS; testcontainers'
Kafka module when a Docker engine answers; else the project's local broker
(scripts/kafka.sh, started if needed). Never a mock. The secured broker
(TLS + SASL/SCRAM, tests/secure.py) and the schema registry (Apicurio,
scripts/registry.sh) are always our own instances, on their own ports, started
for the session and stopped after it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog

from tests.secure import Pki, SecuredBroker, new_password
from tests.support import ROOT
from tests.support.collector import CollectorRunner
from tests.support.kafka import Broker
from tests.support.load import LoadPrograms


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return (
            subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False).returncode == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        yield Broker(env, controllable=False)
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.0").with_kraft() as kafka:
            yield Broker(kafka.get_bootstrap_server(), controllable=False)
        return
    subprocess.run(["bash", str(ROOT / "scripts/kafka.sh"), "up"], check=True)
    yield Broker("127.0.0.1:9092", controllable=True, script=ROOT / "scripts/kafka.sh")


@pytest.fixture
def own_broker(broker: Broker) -> Broker:
    """The broker, when the tests may stop and start it (the local one)."""
    if not broker.controllable:
        pytest.skip("the broker is not ours to stop (KAFKA_BOOTSTRAP_SERVERS or a container)")
    return broker


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A test CA, server certificates (the right host and a wrong one) and a client certificate."""
    return Pki.make(tmp_path_factory.mktemp("pki"), new_password())


@pytest.fixture(scope="session")
def secured_broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[SecuredBroker]:
    """A broker of our own that speaks only SASL_SSL (SCRAM, mutual TLS) to clients."""
    d = tmp_path_factory.mktemp("secured")
    password = new_password()
    password_file = d / "alice.password"
    password_file.write_text(password + "\n")
    run_dir = Path(os.environ.get("EKP_TEST_SECURED_KAFKA_RUN", "/tmp/ekp-sasl-kafka"))
    b = SecuredBroker(pki, password, password_file, run_dir)
    b.up()
    try:
        yield b
    finally:
        b.down()


@dataclass(frozen=True)
class Registry:
    url: str  # the Confluent-compatible API
    port: int
    run_dir: Path


def registry_script(action: str, port: int, run_dir: Path) -> None:
    env = {**os.environ, "EKP_REGISTRY_PORT": str(port), "EKP_REGISTRY_RUN": str(run_dir)}
    subprocess.run(["bash", str(ROOT / "scripts/registry.sh"), action], check=True, env=env)


@pytest.fixture(scope="session")
def schema_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A real Apicurio Registry (in-memory storage) of this session's own."""
    port = int(os.environ.get("EKP_TEST_REGISTRY_PORT", "18081"))
    run_dir = tmp_path_factory.mktemp("registry")
    registry_script("up", port, run_dir)
    try:
        yield Registry(f"http://127.0.0.1:{port}/apis/ccompat/v7", port, run_dir)
    finally:
        registry_script("down", port, run_dir)


@pytest.fixture(scope="session")
def load_programs(tmp_path_factory: pytest.TempPathFactory) -> LoadPrograms:
    return LoadPrograms.build(ROOT / "tests/load", tmp_path_factory.mktemp("load"))


@pytest.fixture
def prefix() -> str:
    """A topic prefix of this test's own, so tests never read each other's events."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def collector(broker: Broker, prefix: str, tmp_path: Path) -> Iterator[CollectorRunner]:
    runner = CollectorRunner(broker=broker, prefix=prefix, workdir=tmp_path)
    yield runner
    runner.kill()


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root for eBPF")
    for item in items:
        if "kernel" in item.keywords:
            item.add_marker(skip)
