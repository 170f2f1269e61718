"""The vocabulary the config sections are declared with.

Each helper states a rule once: pydantic checks it, its message is the one the user reads, and the
JSON schema the chart validates values against carries it (producer/config/export.py).
No helper here is used on a key that can hold a secret, so their messages may show the value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    WrapValidator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

T = TypeVar("T")

# The error type of every message written here; load.py prints their text as it is.
CONFIG_ERROR = "config"


def problem(msg: str, *at: str | int) -> PydanticCustomError:
    """A config error with our own wording, at the key being validated (plus `at`, e.g. a field name)."""
    return PydanticCustomError(CONFIG_ERROR, "{msg}", {"msg": msg, "at": at})


class Section(BaseModel):
    """A config section: immutable, keyword-only, unknown keys rejected, no type coercion.

    strict: "yes" is not a bool and "5" not an int, as a typo must not pass for a value.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_defaults(cls, data: Any) -> Any:
        # `filters:` with nothing under it parses as None: the section's defaults, not an error.
        return {} if data is None else data


def together(sec: BaseModel, a: str, b: str) -> None:
    """Keys `a` and `b` are set both or neither (a client certificate and its key, a user and a password)."""
    if bool(getattr(sec, a)) != bool(getattr(sec, b)):
        raise problem(f"{a} and {b} go together", b if getattr(sec, a) else a)


def section(model: type[Section], description: str) -> Any:
    """A field holding a section: the section's defaults when the key is absent."""
    return Field(default_factory=model, description=description)


def as_tuple(value: Any) -> Any:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else value


# A YAML list (or nothing) as an immutable tuple; strict mode alone would want a tuple.
Seq = Annotated[tuple[T, ...], BeforeValidator(as_tuple)]


# pydantic's errors for a value out of bounds: load.py words them with both bounds.
BOUND_ERRORS = frozenset({"greater_than_equal", "less_than_equal", "greater_than", "less_than"})


def says(what: str, *, except_bounds: bool = False) -> WrapValidator:
    """Report a wrong value as `must be <what>, got <value>`.

    Its items' own messages pass through (they name the item), and with except_bounds so do
    pydantic's out-of-bounds errors (worded with both bounds by load.py).
    """
    keep = {CONFIG_ERROR, *(BOUND_ERRORS if except_bounds else ())}

    def wrap(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(value)
        except ValidationError as e:
            if any(err["type"] in keep for err in e.errors()):
                raise
            raise problem(f"must be {what}, got {value!r}") from None

    return WrapValidator(wrap)


@dataclass(frozen=True)
class Rule:
    """A check with its own message (Annotated metadata); `schema` states it for the chart's values schema."""

    ok: Callable[[Any], bool]
    msg: Callable[[Any], str]
    schema: dict[str, Any] = field(default_factory=dict)

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), **self.schema}

    def _check(self, value: Any) -> Any:
        if not self.ok(value):
            raise problem(self.msg(value))
        return value


def matches(pattern: str, msg: str) -> Rule:
    """A string in which `pattern` is found (the schema carries the same pattern); msg may show {value!r}."""
    compiled = re.compile(pattern)
    return Rule(lambda v: compiled.search(v) is not None, lambda v: msg.format(value=v), {"pattern": pattern})


def power_of_two(lo: int = 1, hi: int | None = None) -> Rule:
    """An int that is a power of two, from lo to hi."""
    span = f" from {lo} to {hi}" if hi is not None else ""
    bounds = {"minimum": lo} | ({"maximum": hi} if hi is not None else {})

    def ok(n: int) -> bool:
        return n & (n - 1) == 0 and lo <= n <= (hi if hi is not None else n)

    return Rule(ok, lambda n: f"must be a power of two{span}, got {n}", bounds)


def split_listen(listen: str) -> tuple[str, int] | None:
    """HOST:PORT as (host, port); an empty host is every address. None when it is not HOST:PORT."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        return None
    return host or "0.0.0.0", int(port)


def bad_listen(listen: str) -> str:
    return f"must be HOST:PORT (port 0 = any free port), got {listen!r}"


# An HTTP endpoint's listen key: HOST:PORT, or "" to serve none.
LISTEN = Rule(lambda v: v == "" or split_listen(v) is not None, bad_listen)
