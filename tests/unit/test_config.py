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
    assert cfg.events.enabled() == tuple(
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
