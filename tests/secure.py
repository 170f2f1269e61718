"""A real TLS + SASL/SCRAM broker for the tests: certificates made with openssl, scripts/kafka.sh to run it.

One broker, three client listeners:
  SASL_SSL   (port)             the right certificate (127.0.0.1, localhost); client certificate required
  WRONGHOST  (wrong_host_port)  SASL_SSL too, but its certificate names another host
  INTERNAL   (internal_port)    PLAINTEXT, for the tests' own admin work (changing a password)
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from tests.support import ROOT

USER = "alice"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_keystore: Path  # PEM keystore (key + certificate) for 127.0.0.1 / localhost
    wrong_keystore: Path  # the same CA, but for wrong-host.invalid
    client_cert: Path
    client_key: Path  # encrypted with the passphrase in key_password_file
    key_password_file: Path

    @classmethod
    def make(cls, d: Path, key_password: str) -> Pki:
        d.mkdir(parents=True, exist_ok=True)
        ca, ca_key = d / "ca.pem", d / "ca.key"
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
            "-days", "3", "-subj", "/CN=ekp test CA",
        )  # fmt: skip

        def leaf(name: str, cn: str, san: str, ext_usage: str, key_args: list[str]) -> tuple[Path, Path]:
            key, csr, crt, ext = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem", d / f"{name}.ext"
            _openssl(
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                str(key),
                *key_args,
            )
            passin = ["-passin", key_args[-1]] if key_args else []
            _openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", f"/CN={cn}", *passin)
            ext.write_text(f"subjectAltName={san}\nextendedKeyUsage={ext_usage}\nbasicConstraints=CA:FALSE\n")
            _openssl(
                "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
                "-out", str(crt), "-days", "3", "-extfile", str(ext),
            )  # fmt: skip
            return key, crt

        def keystore(name: str, key: Path, crt: Path) -> Path:
            ks = d / f"{name}-keystore.pem"
            ks.write_text(key.read_text() + crt.read_text())
            return ks

        skey, scrt = leaf("server", "localhost", "IP:127.0.0.1,DNS:localhost", "serverAuth", [])
        wkey, wcrt = leaf("wrong", "wrong-host.invalid", "DNS:wrong-host.invalid", "serverAuth", [])
        kpw = d / "client-key-password"
        kpw.write_text(key_password + "\n")
        ckey, ccrt = leaf("client", USER, f"DNS:{USER}", "clientAuth", ["-aes256", "-pass", f"file:{kpw}"])
        return cls(ca, keystore("server", skey, scrt), keystore("wrong", wkey, wcrt), ccrt, ckey, kpw)


@dataclass
class SecuredBroker:
    pki: Pki
    password: str  # alice's SCRAM password: the secret the no-leak test greps for
    password_file: Path
    run_dir: Path
    port: int = 19292
    controller_port: int = 19293
    wrong_host_port: int = 19294
    internal_port: int = 19295
    extra: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def wrong_host_bootstrap(self) -> str:
        return f"127.0.0.1:{self.wrong_host_port}"

    @property
    def internal_bootstrap(self) -> str:
        return f"127.0.0.1:{self.internal_port}"

    def security(self, **override: Any) -> dict[str, Any]:
        """The kafka.security section that connects (SASL_SSL, SCRAM-SHA-512, mutual TLS)."""
        return {
            "protocol": "SASL_SSL",
            "ca_file": str(self.pki.ca),
            "cert_file": str(self.pki.client_cert),
            "key_file": str(self.pki.client_key),
            "key_password_file": str(self.pki.key_password_file),
            "sasl_mechanism": "SCRAM-SHA-512",
            "username": USER,
            "password_file": str(self.password_file),
            **override,
        }

    def client_conf(self) -> dict[str, Any]:
        """librdkafka settings for the tests' own consumers."""
        from producer import config
        from producer.kafka.security import connection_config

        kcfg = config.validate({"kafka": {"bootstrap_servers": self.bootstrap, "security": self.security()}})
        return connection_config(kcfg.kafka)

    def _env(self) -> dict[str, str]:
        assert self.extra is not None
        return {
            **os.environ,
            "EKP_KAFKA_PORT": str(self.port),
            "EKP_KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "EKP_KAFKA_RUN": str(self.run_dir),
            "EKP_KAFKA_EXTRA_PROPERTIES": str(self.extra),
            "EKP_KAFKA_SCRAM": "\n".join(
                f"SCRAM-SHA-{n}=[name={USER},password={self.password}]" for n in (256, 512)
            ),
        }

    def write_properties(self) -> None:
        p, pki = self.pki, self.pki
        jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        plain = (
            f'org.apache.kafka.common.security.plain.PlainLoginModule required user_{USER}="{self.password}";'
        )
        lines = [
            f"listeners=SASL_SSL://127.0.0.1:{self.port},WRONGHOST://127.0.0.1:{self.wrong_host_port},"
            f"INTERNAL://127.0.0.1:{self.internal_port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=SASL_SSL://127.0.0.1:{self.port},"
            f"WRONGHOST://127.0.0.1:{self.wrong_host_port},INTERNAL://127.0.0.1:{self.internal_port}",
            "listener.security.protocol.map=SASL_SSL:SASL_SSL,WRONGHOST:SASL_SSL,INTERNAL:PLAINTEXT,"
            "CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=INTERNAL",
            "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={pki.server_keystore}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={p.ca}",
            "listener.name.sasl_ssl.ssl.client.auth=required",
            "listener.name.wronghost.ssl.keystore.type=PEM",
            f"listener.name.wronghost.ssl.keystore.location={pki.wrong_keystore}",
            # Sessions expire, so a password changed on the broker takes effect on live connections.
            "connections.max.reauth.ms=5000",
        ]
        for listener in ("sasl_ssl", "wronghost"):
            lines += [
                f"listener.name.{listener}.scram-sha-256.sasl.jaas.config={jaas}",
                f"listener.name.{listener}.scram-sha-512.sasl.jaas.config={jaas}",
                f"listener.name.{listener}.plain.sasl.jaas.config={plain}",
            ]
        self.extra = self.run_dir.parent / (self.run_dir.name + "-extra.properties")
        self.extra.write_text("\n".join(lines) + "\n")

    def up(self) -> None:
        self.down()  # an instance left behind by an interrupted session holds the ports
        shutil.rmtree(
            self.run_dir, ignore_errors=True
        )  # formatted afresh: the SCRAM users are this session's
        self.write_properties()
        subprocess.run(["bash", str(ROOT / "scripts/kafka.sh"), "up"], check=True, env=self._env())

    def down(self) -> None:
        env = {**os.environ, "EKP_KAFKA_PORT": str(self.port), "EKP_KAFKA_RUN": str(self.run_dir)}
        subprocess.run(["bash", str(ROOT / "scripts/kafka.sh"), "down"], check=True, env=env)

    def set_password(self, password: str) -> None:
        """Change alice's SCRAM-SHA-512 password on the broker (over the internal listener)."""
        admin = AdminClient({"bootstrap.servers": self.internal_bootstrap})
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
        futures = admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(USER, info, password.encode())]
        )
        for f in futures.values():
            f.result(timeout=30)


def new_password() -> str:
    return "pw-" + secrets.token_hex(12)
