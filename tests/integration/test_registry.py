"""Schema registry: a real Apicurio Registry (Confluent-compatible API), checked with Confluent's own client.

What makes the framing right is that confluent-kafka's AvroDeserializer, given
only the registry, decodes what the collector wrote.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from producer import config
from producer.errors import RegistryError, RegistryUnavailableError
from producer.kafka import client, registry
from producer.records import catalog, codec
from tests.authproxy import AuthProxy
from tests.conftest import Registry, registry_script
from tests.secure import Pki, new_password
from tests.support.collector import CollectorRunner, http_get, iter_json_lines, run_cli
from tests.support.kafka import Broker, raw_messages
from tests.support.ledger import assert_identity
from tests.support.records import CTX, exec_record


def exec_dict(*argv: str) -> dict[str, Any]:
    return catalog.DECODERS["process_exec"](
        exec_record(argv=[a.encode() for a in argv]), 0, CTX, 1_700_000_000_000_000_000
    )


def registry_config(url: str, prefix: str, bootstrap: str = "127.0.0.1:9092") -> config.Config:
    return config.validate(
        {"kafka": {"bootstrap_servers": bootstrap, "topic_prefix": prefix}, "schema_registry": {"url": url}}
    )


def test_registration_is_what_confluent_clients_find(schema_registry: Registry) -> None:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    cfg = registry_config(schema_registry.url, prefix)
    reg = registry.Registry(cfg.schema_registry)
    subjects = registry.subjects(cfg)
    assert subjects == {
        **{name: f"{prefix}.{name}-value" for name in ("process_exec", "process_exit", "process_fork")},
        **{name: f"{prefix}.{name}-value" for name in ("tcp_connect", "tcp_accept", "tcp_close")},
        "processes": f"{prefix}.processes-value",
        "drop_report": f"{prefix}.drops-value",
        "containers": f"{prefix}.containers-value",  # k8s attribution is on by default
    }
    # an aggregate has a topic and a subject like any stream (it once went out unregistered)
    with_counts = config.validate(
        {"kafka": {"topic_prefix": prefix}, "events": {"syscall_counts": {"enabled": True}}}
    )
    assert registry.subjects(with_counts)["syscall_counts"] == f"{prefix}.syscall_counts-value"
    assert "process_exec" in subjects
    ids = {name: reg.register(subject, codec.load_schema(name)) for name, subject in subjects.items()}
    assert len(set(ids.values())) == len(subjects)  # every schema differs
    # registering again is idempotent: the same ids
    assert {name: reg.register(s, codec.load_schema(name)) for name, s in subjects.items()} == ids

    client = SchemaRegistryClient({"url": schema_registry.url})
    for name, subject in subjects.items():
        assert client.get_latest_version(subject).schema_id == ids[name]
        got = codec.parse_schema(name, reg.schema_text(ids[name]), "registry")
        assert got.canonical == codec.load_schema(name).canonical

    # what we frame, Confluent's deserializer decodes with nothing but the registry
    record = exec_dict("/bin/echo", "hello")
    framed = codec.Encoder(
        codec.load_schema("process_exec"), header=codec.confluent_header(ids["process_exec"])
    )
    value = framed.encode(record)
    assert value[:5] == b"\x00" + ids["process_exec"].to_bytes(4, "big")
    decoded = AvroDeserializer(client)(
        value, SerializationContext(f"{prefix}.process_exec", MessageField.VALUE)
    )
    assert decoded["argv"] == ["/bin/echo", "hello"]
    assert decoded["pid"] == record["pid"]
    assert int(decoded["timestamp"].timestamp() * 1_000_000) == record["timestamp"]


def test_registry_errors_are_ours(schema_registry: Registry) -> None:
    reg = registry.Registry(registry_config(schema_registry.url, "x").schema_registry)
    with pytest.raises(RegistryError, match=r"schema id 987654: HTTP 404") as e:
        reg.schema_text(987654)
    assert not isinstance(e.value, RegistryUnavailableError)  # an answer, not worth retrying
    down = registry.Registry(registry_config("http://127.0.0.1:1/apis/ccompat/v7", "x").schema_registry)
    with pytest.raises(
        RegistryUnavailableError, match=r"^schema registry http://127.0.0.1:1/apis/ccompat/v7: "
    ):
        down.register("x-value", codec.load_schema("drop_report"))


@pytest.fixture
def auth_proxy(schema_registry: Registry, pki: Pki) -> Iterator[tuple[AuthProxy, str]]:
    password = new_password()
    upstream = schema_registry.url.removesuffix("/apis/ccompat/v7")
    proxy = AuthProxy(upstream, pki.server_keystore, "sr-user", password)
    yield proxy, password
    proxy.close()


def test_https_and_basic_auth(auth_proxy: tuple[AuthProxy, str], pki: Pki, tmp_path: Path) -> None:
    proxy, password = auth_proxy
    url = f"https://127.0.0.1:{proxy.port}/apis/ccompat/v7"
    good, wrong = tmp_path / "password", tmp_path / "wrong"
    good.write_text(password + "\n")
    wrong.write_text("not-" + password)

    def reg(**over: str) -> registry.Registry:
        section = {
            "url": url,
            "username": "sr-user",
            "password_file": str(good),
            "ca_file": str(pki.ca),
            **over,
        }
        return registry.Registry(config.validate({"schema_registry": section}).schema_registry)

    subject = f"t{uuid.uuid4().hex[:12]}.drops-value"
    sid = reg().register(subject, codec.load_schema("drop_report"))
    # Confluent's client, given the same credentials and CA, finds what we registered
    client = SchemaRegistryClient(
        {"url": url, "basic.auth.user.info": f"sr-user:{password}", "ssl.ca.location": str(pki.ca)}
    )
    assert client.get_latest_version(subject).schema_id == sid

    with pytest.raises(RegistryError) as e:
        reg(password_file=str(wrong)).register(subject, codec.load_schema("drop_report"))
    assert str(e.value) == (
        f"schema registry {url}: registering {subject}: HTTP 401 (Unauthorized); check "
        "schema_registry.username and the password in schema_registry.password_file"
    )
    assert not isinstance(e.value, RegistryUnavailableError)
    with pytest.raises(
        RegistryError, match=r": TLS certificate verification failed \(.*\); check schema_registry"
    ):
        reg(ca_file="").schema_text(sid)  # the system's CAs do not know the test CA
    assert password not in str(e.value)


@pytest.mark.kernel
@pytest.mark.broker
def test_registry_refusal_is_one_line_before_any_bpf(
    auth_proxy: tuple[AuthProxy, str], pki: Pki, broker: Broker, tmp_path: Path
) -> None:
    proxy, password = auth_proxy
    wrong = tmp_path / "wrong"
    wrong.write_text("not-" + password)
    url = f"https://127.0.0.1:{proxy.port}/apis/ccompat/v7"
    section = {"url": url, "username": "sr-user", "password_file": str(wrong), "ca_file": str(pki.ca)}
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": broker.bootstrap},
                "schema_registry": section,
                "metrics": {"listen": ""},
            }
        )
    )
    p = run_cli(["run", "--config", str(path)], timeout=120)
    assert p.returncode == 7, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith(f"ebpf-producer: schema registry {url}: registering "), p.stderr
    assert "HTTP 401" in lines[-1] and "schema_registry.password_file" in lines[-1]
    assert "bpf_compiled" not in p.stderr and "Traceback" not in p.stderr
    assert password not in p.stderr


@pytest.mark.broker
def test_tail_decodes_both_framings(schema_registry: Registry, broker: Broker, tmp_path: Path) -> None:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    cfg = registry_config(schema_registry.url, prefix, broker.bootstrap)
    topic = cfg.kafka.topic("process_exec")
    schema = codec.load_schema("process_exec")
    sid = registry.Registry(cfg.schema_registry).register(registry.subject(topic), schema)
    p = client.new_producer(cfg.kafka, "test")
    p.produce(topic, codec.Encoder(schema).encode(exec_dict("/bin/single", "object")))
    p.produce(
        topic, codec.Encoder(schema, header=codec.confluent_header(sid)).encode(exec_dict("/bin/confluent"))
    )
    assert p.flush(30) == 0

    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": broker.bootstrap},
                "schema_registry": {"url": schema_registry.url},
            }
        )
    )
    args = ["tail", "-t", topic, "--from-beginning", "-n", "2", "--idle-timeout", "20"]
    out = run_cli([*args, "--config", str(path)], check=True)
    lines = list(iter_json_lines(out.stdout))
    assert [(ln.get("schema"), ln.get("value", {}).get("argv")) for ln in lines] == [
        ("process_exec", ["/bin/single", "object"]),
        ("process_exec", ["/bin/confluent"]),
    ], out.stdout
    # without the registry, the Confluent-framed message says what is missing (and tail goes on)
    bare = run_cli([*args, "-b", broker.bootstrap], check=True)
    errors = [ln.get("error") for ln in iter_json_lines(bare.stdout)]
    assert errors == [
        None,
        f"Confluent wire format (schema id {sid}) and no schema registry to ask "
        "(give a config with schema_registry.url)",
    ], bare.stdout


# -- the collector with a registry ------------------------------------------------------------------


# Every event type there is, spelled out rather than taken from the config: the expectation must not come
# from the code under test (EventsConfig once left syscall_counts out of registration, topics and checks).
EVERY_TYPE = (
    "process_exec",
    "process_exit",
    "process_fork",
    "file_open",
    "tcp_connect",
    "tcp_accept",
    "tcp_close",
    "syscall_counts",
    "processes",
)


@pytest.mark.kernel
@pytest.mark.broker
@pytest.mark.parametrize("framing", ["confluent", "single-object"])
def test_every_enabled_topic_uses_the_configured_framing(
    framing: str, schema_registry: Registry, collector: CollectorRunner, tmp_path: Path
) -> None:
    overrides: dict[str, Any] = {
        "events": {
            "file_open": {"enabled": True, "path_prefixes": {"allow": [f"{tmp_path}/"]}},
            "syscall_counts": {"enabled": True, "interval_s": 1},
        }
    }
    if framing == "confluent":
        overrides["schema_registry"] = {"url": schema_registry.url}
    collector.start(overrides)
    # one of each: an exec (and its fork and exit), an open under the allowed prefix, a TCP round trip
    subprocess.run(["/bin/sh", "-c", f"echo x > {tmp_path}/f"], check=True)
    with socket.create_server(("127.0.0.1", 0)) as srv, socket.create_connection(srv.getsockname()) as c:
        conn, _ = srv.accept()
        c.sendall(b"x")
        conn.recv(1)
        conn.close()
    time.sleep(2.5)  # syscall_counts publishes every second
    assert collector.stop() == 0

    client = SchemaRegistryClient({"url": schema_registry.url})
    for kind in (*EVERY_TYPE, "drops"):
        topic = f"{collector.prefix}.{kind}"
        msgs = list(raw_messages(collector.broker.bootstrap, topic, idle_s=3))
        assert msgs, f"{topic} is empty"
        schema = codec.load_schema("drop_report" if kind == "drops" else kind)
        if framing == "confluent":
            sid = client.get_latest_version(f"{topic}-value").schema_id
            prefix, ctype = b"\x00" + sid.to_bytes(4, "big"), b"application/vnd.confluent.avro"
        else:
            prefix, ctype = b"\xc3\x01" + schema.fingerprint, b"application/vnd.apache.avro+single-object"
        for m in msgs:
            assert m.value[: len(prefix)] == prefix, (topic, m.value[:10].hex())
            assert m.headers["content-type"] == ctype, topic


@pytest.mark.kernel
@pytest.mark.broker
def test_exec_end_to_end_in_the_confluent_wire_format(
    schema_registry: Registry, collector: CollectorRunner
) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    collector.start({"schema_registry": {"url": schema_registry.url}})
    subprocess.run(["/bin/sh", "-c", "exit 0", marker], check=True)
    assert collector.stop() == 0

    client = SchemaRegistryClient({"url": schema_registry.url})
    deserialize = AvroDeserializer(client)
    decoded = {}
    for kind in ("process_exec", "drops"):
        topic = f"{collector.prefix}.{kind}"
        sid = client.get_latest_version(f"{topic}-value").schema_id
        msgs = list(raw_messages(collector.broker.bootstrap, topic, idle_s=3))
        assert msgs
        for m in msgs:
            assert m.value[:5] == b"\x00" + sid.to_bytes(4, "big")
            assert m.headers["content-type"] == b"application/vnd.confluent.avro"
        ctx = SerializationContext(topic, MessageField.VALUE)
        decoded[kind] = [deserialize(m.value, ctx) for m in msgs]
    mine = [v for v in decoded["process_exec"] if marker in v["argv"]]
    assert len(mine) == 1 and mine[0]["argv"] == ["/bin/sh", "-c", "exit 0", marker]
    final = [r for r in decoded["drops"] if r["final"]]
    assert final and assert_identity(final[-1])["delivered"] == len(decoded["process_exec"])
    assert "schemas_registered" in collector.log()


@pytest.mark.kernel
def test_registry_down_at_start_waits_not_ready_then_proceeds(
    collector: CollectorRunner, tmp_path: Path
) -> None:
    port = 18082
    late = Registry(f"http://127.0.0.1:{port}/apis/ccompat/v7", port, tmp_path / "late-registry")
    collector.start({"schema_registry": {"url": late.url}}, wait_readers=False)
    try:
        collector.wait_for_log("schema_registry_unavailable", timeout=60)
        metrics = collector.metrics_port()
        status, body = http_get(metrics, "/readyz")
        assert (status, body) == (
            503,
            "bpf_attached=False kafka_reachable=False schemas_registered=False spooling=0\n",
        )
        assert http_get(metrics, "/healthz") == (200, "ok\n")
        assert "ebpf_producer_schemas_registered 0" in http_get(metrics, "/metrics")[1]
        assert "bpf_compiled" not in collector.log() and "collector_started" not in collector.log()
        registry_script("up", port, late.run_dir)
        collector.wait_for_log("schemas_registered", timeout=60)  # backoff is at most 30 s
        collector.wait_for_log("reader_started", timeout=60)
        deadline = time.monotonic() + 30
        while http_get(metrics, "/readyz")[0] != 200:
            assert time.monotonic() < deadline, http_get(metrics, "/readyz")
            time.sleep(0.5)
        assert collector.stop() == 0
    finally:
        registry_script("down", port, late.run_dir)
    waits = collector.log_events("schema_registry_unavailable")
    assert waits[0]["error"].startswith(f"schema registry {late.url}: no answer")


@pytest.mark.kernel
def test_sigterm_while_waiting_for_the_registry_exits_cleanly(collector: CollectorRunner) -> None:
    collector.start({"schema_registry": {"url": "http://127.0.0.1:1/apis/ccompat/v7"}}, wait_readers=False)
    collector.wait_for_log("schema_registry_unavailable", timeout=60)
    t0 = time.monotonic()
    collector.signal(signal.SIGTERM)
    assert collector.wait(timeout=10) == 0
    assert time.monotonic() - t0 < 5
    log = collector.log()
    assert "collector_stopped" in log and "bpf_compiled" not in log and "reader_started" not in log
