"""Config validation: every bad key or value is one line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from producer import config
from producer.errors import ConfigError


def test_defaults_are_valid() -> None:
    cfg = config.validate({})
    assert cfg.kafka.topic("process_exec") == "ebpf.process_exec"
    assert cfg.kafka.drops_topic == "ebpf.drops"
    assert cfg.events.streams() == tuple(
        t for t in config.EVENT_TYPES if t not in ("file_open", "syscall_counts")
    )
    assert not cfg.events.file_open.enabled and not cfg.events.syscall_counts.enabled
    assert cfg.filters.exclude_self and cfg.filters.exclude_local_broker
    assert cfg.shutdown.timeout_s == 20
    assert cfg.accounting.interval_s == 10


def test_a_full_config_round_trips(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(
        "host: node-7\n"
        "kafka: {bootstrap_servers: 'b1:9092,b2:9092', topic_prefix: k8s.prod, max_block_ms: 50,\n"
        "        client: {linger.ms: 5, compression.type: zstd}}\n"
        "events: {process_exec: {max_args: 16, max_arg_len: 256, include_failed: true}}\n"
        "readers: {cpu_groups: [[0, 1], [2, 3]], perf_pages: 128, wakeup_events: 64, max_latency_ms: 50}\n"
        "shutdown: {timeout_s: 5}\naccounting: {interval_s: 1.5}\nmetrics: {listen: ':9000'}\n"
        "log: {level: debug, format: json}\n"
    )
    cfg = config.load(p)
    assert cfg.hostname == "node-7"
    assert cfg.kafka.topic("process_exec") == "k8s.prod.process_exec"
    assert cfg.kafka.client == {"linger.ms": 5, "compression.type": "zstd"}
    assert cfg.readers.cpu_groups == ((0, 1), (2, 3))
    assert cfg.events.process_exec.include_failed is True
    assert cfg.accounting.interval_s == 1.5
    assert config.parse_listen(cfg.metrics.listen) == ("0.0.0.0", 9000)


SASL = {"protocol": "SASL_SSL", "username": "alice", "password_file": "/run/secrets/pw"}


def _sec(**kw: object) -> dict[str, object]:
    return {"kafka": {"security": kw}}


SECURITY_CASES = [
    (
        _sec(protocol="TLS"),
        "kafka.security.protocol: must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, got 'TLS'",
    ),
    (
        _sec(**SASL, sasl_mechanism="GSSAPI"),
        "kafka.security.sasl_mechanism: must be SCRAM-SHA-256, SCRAM-SHA-512",
    ),
    (
        _sec(**{**SASL, "protocol": "SASL_PLAINTEXT"}, sasl_mechanism="PLAIN"),
        "kafka.security.sasl_mechanism: PLAIN sends the password as it is: only allowed with protocol "
        "SASL_SSL, not SASL_PLAINTEXT",
    ),
    (
        _sec(protocol="SASL_SSL", password_file="/p"),
        "kafka.security.username: required with protocol SASL_SSL",
    ),
    (_sec(protocol="SASL_PLAINTEXT", username="a"), "kafka.security.password_file: required with protocol"),
    (
        _sec(ca_file="/ca.pem"),
        "kafka.security.ca_file: only used with protocol SSL or SASL_SSL, not PLAINTEXT",
    ),
    (_sec(verify_hostname=False), "kafka.security.verify_hostname: only used with protocol SSL or SASL_SSL"),
    (
        _sec(protocol="SSL", username="a"),
        "kafka.security.username: only used with protocol SASL_PLAINTEXT or SASL_SSL, not SSL",
    ),
    (_sec(protocol="SSL", cert_file="/c.pem"), "kafka.security.key_file: cert_file and key_file go together"),
    (
        _sec(protocol="SSL", key_password_file="/k"),
        "kafka.security.key_password_file: only used with key_file",
    ),
    (_sec(protocol="SSL", verify_hostname="no"), "kafka.security.verify_hostname: must be true or false"),
    (
        _sec(**SASL, password="hunter2"),
        "kafka.security.password: secrets are never written into the config; put it in a file",
    ),
    (_sec(protocol="SSL", key_password="x"), "set kafka.security.key_password_file to its path"),
    (
        _sec(pasword_file="/p"),
        "kafka.security.pasword_file: unknown key (did you mean kafka.security.password_file?)",
    ),
    (
        {"kafka": {"client": {"sasl.password": "x"}}},
        "kafka.client.sasl.password: TLS and SASL settings belong in kafka.security (secrets are read from "
        "files there); use kafka.security.password_file",
    ),
    ({"kafka": {"client": {"security.protocol": "ssl"}}}, "use kafka.security.protocol"),
    ({"kafka": {"client": {"ssl.ca.location": "/ca"}}}, "use kafka.security.ca_file"),
    (
        {"kafka": {"client": {"ssl.endpoint.identification.algorithm": "none"}}},
        "use kafka.security.verify_hostname",
    ),
    ({"kafka": {"client": {"ssl.key.pem": "-----BEGIN"}}}, "kafka.client.ssl.key.pem: can carry credentials"),
    (
        {"kafka": {"client": {"enable.ssl.certificate.verification": False}}},
        "kafka.client.enable.ssl.certificate.verification: would accept any certificate",
    ),
    ({"kafka": {"client": {"sasl.oauthbearer.client.secret": "s"}}}, "can carry credentials or key material"),
    ({"schema_registry": {"url": "ftp://r:1"}}, "schema_registry.url: must be an http:// or https:// URL"),
    (
        {"schema_registry": {"url": "https://u:p@r:8081"}},
        "schema_registry.url: must not carry credentials; use schema_registry.username and password_file",
    ),
    (
        {"schema_registry": {"url": "https://r", "username": "u"}},
        "schema_registry.password_file: username and",
    ),
    (
        {"schema_registry": {"url": "http://r", "username": "u", "password_file": "/p"}},
        "schema_registry.password_file: basic auth over http:// would send the password as it is; use https://",
    ),
    (
        {"schema_registry": {"url": "http://r", "ca_file": "/ca"}},
        "schema_registry.ca_file: only used with an https",
    ),
    ({"schema_registry": {"username": "u"}}, "schema_registry.username: only used with schema_registry.url"),
    (
        {"schema_registry": {"url": "https://r", "password": "p"}},
        "schema_registry.password: secrets are never",
    ),
]


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (
            {"kafka": {"bootstrap_server": "x"}},
            "kafka.bootstrap_server: unknown key (did you mean kafka.bootstrap_servers?)",
        ),
        ({"kafak": {}}, "kafak: unknown key (did you mean kafka?)"),
        ({"kafka": {"bootstrap_servers": ""}}, "kafka.bootstrap_servers: must name"),
        ({"kafka": {"topic_prefix": "a b"}}, "kafka.topic_prefix: must be letters"),
        ({"kafka": {"max_block_ms": "1s"}}, "kafka.max_block_ms: must be an integer, got '1s'"),
        ({"kafka": {"client": {"acks": 1}}}, "kafka.client.acks: is set by the collector"),
        ({"kafka": {"client": {"enable.idempotence": False}}}, "kafka.client.enable.idempotence: is set by"),
        ({"kafka": {"client": {"linger.ms": [1]}}}, "kafka.client.linger.ms: must be a scalar"),
        ({"kafka": "localhost"}, "kafka: must be a mapping"),
        ({"readers": {"perf_pages": 3}}, "readers.perf_pages: must be a power of two, got 3"),
        ({"readers": {"count": 0}}, "readers.count: must be an integer >= 1 or 'auto', got 0"),
        ({"readers": {"count": "many"}}, "readers.count: must be an integer >= 1 or 'auto'"),
        (
            {"readers": {"cpu_groups": [[0], [0, 1]]}},
            "readers.cpu_groups: a CPU appears in more than one group",
        ),
        ({"readers": {"cpu_groups": [[0], "1"]}}, "readers.cpu_groups[1]: must be a non-empty list"),
        ({"readers": {"cpu_groups": [[0]], "count": 2}}, "readers.count: conflicts with readers.cpu_groups"),
        ({"readers": {"wakeup_events": 0}}, "readers.wakeup_events: must be between 1 and 4096"),
        ({"readers": {"pin": "yes"}}, "readers.pin: must be true or false, got 'yes'"),
        (
            {"events": {"process_exec": {"max_args": 20}}},
            "events.process_exec.max_args: must be a power of two",
        ),
        (
            {"events": {"process_exec": {"max_arg_len": 8}}},
            "events.process_exec.max_arg_len: must be a power",
        ),
        (
            {"events": {t: {"enabled": False} for t in config.EVENT_TYPES}},
            "events: no event type is enabled",
        ),
        (
            {"filters": {"comm": {"deny": ["a-name-longer-than-15"]}}},
            "filters.comm[0]: a task name is 1 to 15 bytes",
        ),
        ({"filters": {"uid": {"allow": [0], "deny": [0]}}}, "filters.uid: [0] both allowed and denied"),
        ({"filters": {"pid": {"deny": ["1"]}}}, "filters.pid.deny[0]: must be int, got '1'"),
        ({"filters": {"cgroup": {"deny": [1.5]}}}, "filters.cgroup.deny[0]: must be int or str, got 1.5"),
        ({"filters": {"comm": {"deny": "bash"}}}, "filters.comm.deny: must be a list, got str"),
        ({"events": {"file_open": {"path_prefixes": {"allow": ["x" * 64]}}}}, "a prefix is 1 to 63 bytes"),
        (
            {"events": {"syscall_counts": {"interval_s": 0.1}}},
            "events.syscall_counts.interval_s: must be between",
        ),
        ({"events": {"tcp_close": {"enable": True}}}, "events.tcp_close.enable: unknown key (did you mean"),
        ({"shutdown": {"timeout_s": 0}}, "shutdown.timeout_s: must be between 1 and 600"),
        ({"accounting": {"interval_s": True}}, "accounting.interval_s: must be a number, got True"),
        ({"metrics": {"listen": "9464"}}, "metrics.listen: must be HOST:PORT"),
        ({"log": {"level": "verbose"}}, "log.level: must be debug, info, warning or error"),
        ([1, 2], "config: the top level must be a mapping"),
        *SECURITY_CASES,
    ],
)
def test_bad_values_name_the_key(data: object, needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        config.validate(data)
    msg = str(e.value)
    assert needle in msg
    assert "\n" not in msg
    assert msg.startswith("config: ")


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read .*missing.yaml"):
        config.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kafka: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml line \d+: not valid YAML"):
        config.load(bad)


def test_empty_file_is_the_defaults(tmp_path: Path) -> None:
    p = tmp_path / "empty.yaml"
    p.write_text("")
    assert config.load(p) == config.validate({})


def test_hostname_falls_back_to_node_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODE_NAME", "worker-3")
    assert config.validate({}).hostname == "worker-3"
    assert config.validate({"host": "explicit"}).hostname == "explicit"


def test_a_full_security_config(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(
        "kafka:\n  security:\n    protocol: SASL_SSL\n    ca_file: /s/ca.crt\n    cert_file: /s/tls.crt\n"
        "    key_file: /s/tls.key\n    key_password_file: /s/key-password\n"
        "    sasl_mechanism: SCRAM-SHA-256\n    username: collector\n    password_file: /s/password\n"
        "schema_registry: {url: 'https://registry:8081', username: sr, password_file: /s/sr,\n"
        "                  ca_file: /s/ca.crt}\n"
    )
    cfg = config.load(p)
    sec = cfg.kafka.security
    assert (sec.tls, sec.sasl, sec.verify_hostname) == (True, True, True)
    assert [k for k, _ in sec.files()] == [
        "kafka.security.ca_file",
        "kafka.security.cert_file",
        "kafka.security.key_file",
        "kafka.security.key_password_file",
        "kafka.security.password_file",
    ]
    assert cfg.schema_registry.enabled
    assert cfg.schema_registry.files() == [
        ("schema_registry.password_file", "/s/sr"),
        ("schema_registry.ca_file", "/s/ca.crt"),
    ]


def test_plain_is_allowed_over_sasl_ssl_and_the_default_is_plaintext() -> None:
    cfg = config.validate(_sec(**SASL, sasl_mechanism="PLAIN"))
    assert cfg.kafka.security.sasl_mechanism == "PLAIN"
    default = config.validate({}).kafka.security
    assert (default.protocol, default.sasl_mechanism, default.files()) == ("PLAINTEXT", "SCRAM-SHA-512", [])
    assert not config.validate({}).schema_registry.enabled


@pytest.mark.parametrize(
    ("data", "line"),
    [
        # the bounds in a message are the schema's: both of them, whichever was crossed
        ({"readers": {"max_latency_ms": 0}}, "readers.max_latency_ms: must be between 1 and 60000, got 0"),
        ({"readers": {"max_auto": 0}}, "readers.max_auto: must be >= 1, got 0"),
        ({"readers": {"restart_backoff_max_s": 0}}, "readers.restart_backoff_max_s: must be > 0, got 0"),
        (
            {"filters": {"uid": {"deny": [-1]}}},
            "filters.uid.deny[0]: must be between 0 and 4294967295, got -1",
        ),
        # a password where a path goes is not shown
        (
            {"kafka": {"security": {"password_file": 12345}}},
            "kafka.security.password_file: must be a string, got int",
        ),
        ({"shutdown": {"timeout_s": float("nan")}}, "shutdown.timeout_s: must be a finite number, got nan"),
        ({"readers": []}, "readers: must be a mapping, got list"),
        ({"kafka": {"topic_partitions": 0}}, "kafka.topic_partitions: must be -1 (broker default) or >= 1"),
        (
            {"events": {t: {"enabled": t == "syscall_counts"} for t in config.EVENT_TYPES}},
            "events: syscall_counts needs at least one other event type enabled",
        ),
        (
            {"schema_registry": {"url": "ftp://u:pw@r"}},
            "schema_registry.url: must not carry credentials; use schema_registry.username and password_file",
        ),
    ],
)
def test_messages_derived_from_the_models(data: object, line: str) -> None:
    with pytest.raises(ConfigError) as e:
        config.validate(data)
    assert str(e.value).startswith(f"config: {line}")
    assert "12345" not in str(e.value) and "pw" not in str(e.value)


def test_empty_sections_are_their_defaults() -> None:
    assert config.validate({"filters": None, "events": {"file_open": None}}) == config.validate({})


def test_streams_and_enabled_types() -> None:
    cfg = config.validate({"events": {"syscall_counts": {"enabled": True}}})
    # in catalog order: syscall_counts between the perf streams and the processes stream
    assert cfg.events.enabled_types() == (*cfg.events.streams()[:-1], "syscall_counts", "processes")
    assert "syscall_counts" not in cfg.events.streams()
