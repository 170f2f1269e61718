"""One Kafka boundary: only producer/kafka/ touches confluent_kafka, and every librdkafka error name
the collector matches on is one the library has (a misspelt name is a counter that never moves)."""

from __future__ import annotations

import ast

import pytest
from confluent_kafka import KafkaError

from producer.kafka import admin, client
from producer.ledger.arena import DELIVERY_CODES
from tests.support import ROOT

PRODUCER = ROOT / "producer"
BOUNDARY = PRODUCER / "kafka"


def confluent_imports(path: str) -> list[str]:
    tree = ast.parse((PRODUCER / path).read_text(), path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
    return [n for n in found if n == "confluent_kafka" or n.startswith("confluent_kafka.")]


def test_only_the_kafka_package_imports_confluent_kafka() -> None:
    modules = [str(p.relative_to(PRODUCER)) for p in PRODUCER.rglob("*.py")]
    importers = {m for m in modules if confluent_imports(m)}
    assert importers, "the boundary itself imports it"
    assert sorted(m for m in importers if not (PRODUCER / m).is_relative_to(BOUNDARY)) == []


# The names the ledger counts delivery failures by ("other" is ours), the purges it counts as
# shutdown, and the refusals that end a start-up.
MATCHED = [n for n in DELIVERY_CODES if n != "other"] + list(client.PURGE_ERRORS) + list(admin.REFUSALS)


@pytest.mark.parametrize("name", MATCHED)
def test_every_error_name_matched_exists_in_librdkafka(name: str) -> None:
    code = getattr(KafkaError, name, None)
    assert isinstance(code, int), f"confluent_kafka.KafkaError has no {name}"
    assert KafkaError(code).name() == name  # what a delivery report's err.name() says


def test_other_is_last_and_no_librdkafka_name() -> None:
    assert DELIVERY_CODES[-1] == "other" and not hasattr(KafkaError, "other")
