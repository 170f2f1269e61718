"""YAML in, a validated Config out; pydantic's errors become one line naming the dotted key.

This is the one place ValidationError is translated, e.g.
``config: readers.perf_pages: must be a power of two, got 3``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ..errors import ConfigError
from .model import Config
from .rules import BOUND_ERRORS, CONFIG_ERROR
from .schema import node_at

Loc = tuple[str | int, ...]


def load(path: str | os.PathLike[str] | None) -> Config:
    """Read and validate a YAML config file; None gives the embedded defaults.

    Raises ConfigError with one line naming the key on any problem.
    """
    if path is None:
        return validate({})
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"config: cannot read {p}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config: {p}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    return validate({} if data is None else data)


def validate(data: Any) -> Config:
    """Build a Config from plain data (as parsed from YAML)."""
    if not isinstance(data, Mapping):
        raise ConfigError("config: the top level must be a mapping of sections")
    try:
        return Config.model_validate(dict(data))
    except ValidationError as e:
        # The first problem, as the user fixes one at a time (pydantic reports in the file's key order).
        raise ConfigError(f"config: {describe(e.errors()[0])}") from None


def dotted(loc: Loc) -> str:
    """('filters', 'comm', 'deny', 0) -> filters.comm.deny[0]"""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else part
    return out


def describe(err: ErrorDetails) -> str:
    """One pydantic error as `key.path: what is wrong`."""
    loc: Loc = tuple(err["loc"])
    kind, ctx, value = err["type"], err.get("ctx", {}), err["input"]
    if kind == CONFIG_ERROR:
        return f"{dotted((*loc, *ctx['at']))}: {ctx['msg']}"
    if kind in ("extra_forbidden", "invalid_key"):
        return _unknown_key(loc[:-1], str(loc[-1]))
    got = _shown(loc, value)
    if kind in BOUND_ERRORS:
        what = _bounds(node_at(loc))
    elif kind == "literal_error":
        what = ctx["expected"].replace("'", "")
    else:
        what = _TYPES.get(kind, "")
        got = type(value).__name__ if kind in _BY_TYPE_NAME else got
    if not what:  # an error this module does not word: pydantic's own, still one line
        return f"{dotted(loc)}: {err['msg'][:1].lower()}{err['msg'][1:]}"
    return f"{dotted(loc)}: must be {what}, got {got}"


_TYPES = {
    "bool_type": "true or false",
    "int_type": "an integer",
    "float_type": "a number",
    "finite_number": "a finite number",
    "string_type": "a string",
    "tuple_type": "a list",
    "model_type": "a mapping",
    "dict_type": "a mapping",
}
# Where the value's type says enough (a whole list or mapping need not be echoed).
_BY_TYPE_NAME = {"tuple_type", "model_type", "dict_type"}


def _shown(loc: Loc, value: Any) -> str:
    # A password typed where its *_file goes must not reach a log: show its type only.
    if any("password" in str(part) for part in loc):
        return type(value).__name__
    return repr(value)


def _bounds(node: dict[str, Any]) -> str:
    lo = node.get("minimum", node.get("exclusiveMinimum"))
    hi = node.get("maximum", node.get("exclusiveMaximum"))
    if "minimum" in node and "maximum" in node:
        return f"between {lo} and {hi}"
    low = f"{'>=' if 'minimum' in node else '>'} {lo}" if lo is not None else ""
    high = f"{'<=' if 'maximum' in node else '<'} {hi}" if hi is not None else ""
    return " and ".join(b for b in (low, high) if b)


def _model_at(loc: Loc) -> type[BaseModel]:
    cls: type[BaseModel] = Config
    for part in loc:
        annotation = cls.model_fields[str(part)].annotation
        assert isinstance(annotation, type) and issubclass(annotation, BaseModel), loc
        cls = annotation
    return cls


def _unknown_key(section: Loc, key: str) -> str:
    fields = _model_at(section).model_fields
    prefix = f"{dotted(section)}." if section else ""
    if f"{key}_file" in fields:
        return (
            f"{prefix}{key}: secrets are never written into the config; put it in a file (e.g. a mounted "
            f"Secret) and set {prefix}{key}_file to its path"
        )
    close = difflib.get_close_matches(key, fields, n=1)
    hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
    return f"{prefix}{key}: unknown key{hint}; known keys here: {', '.join(sorted(fields))}"
