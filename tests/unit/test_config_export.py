"""The chart's values schema and README's defaults block are what the config models generate."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from producer import config
from producer.config import export


@pytest.mark.parametrize(
    ("path", "render"),
    [(export.CHART_SCHEMA, export.chart_schema_text), (export.README, export.readme_text)],
    ids=["chart-schema", "readme"],
)
def test_the_committed_file_is_the_generated_one(path: Any, render: Any) -> None:
    current = path.read_text(encoding="utf-8")
    assert render(current) == current, f"{path.name} is stale: run `{export.COMMAND}` (make config-export)"


def test_check_mode_names_a_stale_file_and_rewrites_nothing(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    schema, readme = tmp_path / "values.schema.json", tmp_path / "README.md"
    schema.write_text(export.CHART_SCHEMA.read_text())
    readme.write_text(export.README.read_text().replace("topic_prefix: ebpf ", "topic_prefix: other"))
    monkeypatch.setattr(export, "ROOT", tmp_path)
    monkeypatch.setattr(export, "CHART_SCHEMA", schema)
    monkeypatch.setattr(export, "README", readme)
    before = readme.read_text()
    assert export.main(["--check"]) == 1
    assert capsys.readouterr().out == f"README.md: stale; run {export.COMMAND}\n"
    assert readme.read_text() == before
    assert export.main([]) == 0
    assert export.main(["--check"]) == 0
    assert readme.read_text() == export.README.read_text()


def test_the_readme_block_is_yaml_the_collector_reads_as_its_defaults() -> None:
    text = export.README.read_text()
    block = text.split(export.README_BEGIN + "\n```yaml\n")[1].split("```\n" + export.README_END)[0]
    assert config.validate(yaml.safe_load(block)) == config.validate({})
    assert block.count("\n") == _count_keys(config.Config)  # every key has its line


def _count_keys(model: Any) -> int:
    n = 0
    for f in model.model_fields.values():
        sub = f.annotation
        n += 1
        if isinstance(sub, type) and hasattr(sub, "model_fields") and not getattr(sub, "compact", False):
            n += _count_keys(sub)
    return n


def _nodes(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _nodes(v)
    elif isinstance(node, list):
        for v in node:
            yield from _nodes(v)


def test_the_chart_schema_is_self_contained_draft_07() -> None:
    sub = json.loads(export.CHART_SCHEMA.read_text())["properties"]["config"]
    keywords = {k for n in _nodes(sub) for k in n}
    assert not keywords & {"$ref", "$defs", "prefixItems", "title", "default"}
    # every section and event type rejects unknown keys, as the collector does
    assert all(
        n.get("additionalProperties") is False
        for n in _nodes(sub)
        if n.get("type") == "object" and "properties" in n
    )


def test_every_key_has_a_description() -> None:
    def walk(model: Any, path: str) -> None:
        for name, f in model.model_fields.items():
            assert f.description, f"{path}{name}"
            sub = f.annotation
            if isinstance(sub, type) and hasattr(sub, "model_fields"):
                walk(sub, f"{path}{name}.")

    walk(config.Config, "")
