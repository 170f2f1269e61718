"""kafka.security as librdkafka settings, and the secret files behind it."""

from __future__ import annotations

from pathlib import Path

import pytest

from producer import config
from producer.errors import PreflightError, SecretFileError
from producer.kafka import client, secretfiles, security
from producer.ops import preflight
from producer.ops.metrics import Health


def sasl_ssl(tmp_path: Path, **over: object) -> config.Config:
    (tmp_path / "password").write_text("s3cret-pw\n")  # as `echo` or an editor leaves it
    (tmp_path / "key-password").write_text("key-pw")
    for name in ("ca.pem", "tls.crt", "tls.key"):
        (tmp_path / name).write_text("-----BEGIN-----\n")
    sec = {
        "protocol": "SASL_SSL",
        "ca_file": str(tmp_path / "ca.pem"),
        "cert_file": str(tmp_path / "tls.crt"),
        "key_file": str(tmp_path / "tls.key"),
        "key_password_file": str(tmp_path / "key-password"),
        "username": "alice",
        "password_file": str(tmp_path / "password"),
        **over,
    }
    return config.validate({"kafka": {"bootstrap_servers": "b:9093", "security": sec}})


def test_sasl_ssl_maps_to_librdkafka(tmp_path: Path) -> None:
    assert security.security_settings(sasl_ssl(tmp_path).kafka.security) == {
        "security.protocol": "sasl_ssl",
        "ssl.ca.location": str(tmp_path / "ca.pem"),
        "ssl.certificate.location": str(tmp_path / "tls.crt"),
        "ssl.key.location": str(tmp_path / "tls.key"),
        "ssl.key.password": "key-pw",
        "ssl.endpoint.identification.algorithm": "https",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alice",
        "sasl.password": "s3cret-pw",
    }


def test_every_client_gets_the_security_settings(tmp_path: Path) -> None:
    kcfg = sasl_ssl(tmp_path, sasl_mechanism="SCRAM-SHA-256").kafka
    conf = client.client_config(kcfg, "x")
    assert conf["sasl.mechanism"] == "SCRAM-SHA-256" and conf["sasl.password"] == "s3cret-pw"
    assert conf["enable.idempotence"] is True and conf["acks"] == "all"
    assert security.connection_config(kcfg, "other:1")["bootstrap.servers"] == "other:1"
    assert security.connection_config(kcfg)["security.protocol"] == "sasl_ssl"


def test_plaintext_and_tls_without_hostname_check() -> None:
    assert security.security_settings(config.validate({}).kafka.security) == {
        "security.protocol": "plaintext"
    }
    sec = config.validate(
        {"kafka": {"security": {"protocol": "SSL", "verify_hostname": False}}}
    ).kafka.security
    assert security.security_settings(sec) == {
        "security.protocol": "ssl",
        "ssl.endpoint.identification.algorithm": "none",
    }


def test_a_missing_secret_file_names_key_and_path_only(tmp_path: Path) -> None:
    cfg = sasl_ssl(tmp_path, password_file=str(tmp_path / "gone"))
    with pytest.raises(SecretFileError) as e:
        security.security_settings(cfg.kafka.security)
    assert (
        str(e.value)
        == f"kafka.security.password_file: cannot read {tmp_path / 'gone'} (No such file or directory)"
    )
    assert isinstance(e.value, PreflightError) and e.value.exit_code == 3


def test_empty_and_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(SecretFileError, match=r"^k: .*/empty is empty$"):
        secretfiles.read("k", str(tmp_path / "empty"))
    with pytest.raises(SecretFileError, match=r"^k: cannot read .* \(Is a directory\)$"):
        secretfiles.check_readable("k", str(tmp_path))


def test_preflight_checks_every_file_without_showing_any(tmp_path: Path) -> None:
    cfg = sasl_ssl(tmp_path)
    check = preflight.check_credentials(cfg)
    assert check.detail == (
        "kafka.security.ca_file, kafka.security.cert_file, kafka.security.key_file, "
        "kafka.security.key_password_file, kafka.security.password_file"
    )
    (tmp_path / "ca.pem").unlink()
    with pytest.raises(SecretFileError, match=r"^kafka\.security\.ca_file: cannot read .*/ca\.pem"):
        preflight.check_credentials(cfg)
    assert preflight.check_credentials(config.validate({})).detail == "none configured"


def test_waiting_for_the_registry_is_not_ready() -> None:
    h = Health(bpf_attached=True, kafka_reachable=True)
    assert h.ready
    h.schemas_registered = False
    assert not h.ready
