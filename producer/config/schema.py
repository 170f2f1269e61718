"""The config's JSON schema, self-contained: what the chart validates values with, and where error
messages find a key's bounds."""

from __future__ import annotations

import functools
from typing import Any

from .model import Config


@functools.cache
def json_schema() -> dict[str, Any]:
    """pydantic's schema of Config with every $ref inlined (draft-07 ignores keys beside a $ref, and
    helm's chart schemas are draft-07) and without the generated titles (the keys are their own)."""
    schema = Config.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, list):
            return [inline(n) for n in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            node = {**defs[node["$ref"].removeprefix("#/$defs/")], **node}
            del node["$ref"]
        out: dict[str, Any] = {}
        for key, value in sorted(node.items()):  # keywords sorted; properties keep the models' order
            if key == "default":  # data, not schema
                out[key] = value
            elif key == "properties":  # key names, not keywords
                out[key] = {name: inline(sub) for name, sub in value.items()}
            elif key != "title":
                out[key] = inline(value)
        return out

    inlined: dict[str, Any] = inline(schema)
    return inlined


def node_at(path: tuple[str | int, ...]) -> dict[str, Any]:
    """The schema of one key: names go through properties, list indexes through items."""
    node = json_schema()
    for part in path:
        node = next((n for n in node.get("anyOf", []) if n.get("type") != "null"), node)
        node = node["items"] if isinstance(part, int) else node["properties"][part]
    return next((n for n in node.get("anyOf", []) if n.get("type") != "null"), node)
