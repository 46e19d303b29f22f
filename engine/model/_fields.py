"""Typed reads from raw spec dicts, with the field path in every error.

Private helper of `model.types`: each `from_dict` wraps its input in a
`Reader` and asks for typed fields. A missing optional field or an explicit
null yields the documented default; a wrong type raises `errors.SpecError`
whose `field` is the exact path ("spec.services[1].version").
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from engine import errors
from engine.model import quantities

E = TypeVar("E", bound=enum.Enum)
T_co = TypeVar("T_co", covariant=True)


class FromDict(Protocol[T_co]):
    """Anything with the `from_dict(data, *, field)` constructor of the model."""

    def from_dict(self, data: Mapping[str, Any], *, field: str = "spec") -> T_co: ...


def describe(value: object) -> str:
    """Name a value's JSON type for error messages ("a string", "null")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


class Reader:
    """Reads the fields of one object at spec path `field`."""

    __slots__ = ("data", "field")

    def __init__(self, data: object, field: str) -> None:
        if not isinstance(data, Mapping):
            raise errors.SpecError(
                f"expected an object, got {describe(data)}", field=field or "<root>"
            )
        self.data: Mapping[str, Any] = data
        self.field = field

    def at(self, key: str) -> str:
        """The path of a child field."""
        return f"{self.field}.{key}" if self.field else key

    def _wrong(self, key: str, expected: str, value: object) -> errors.SpecError:
        return errors.SpecError(f"expected {expected}, got {describe(value)}", field=self.at(key))

    def text(self, key: str, default: str = "") -> str:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self._wrong(key, "a string", value)
        return value

    def optional_text(self, key: str) -> str | None:
        return self.text(key) if self.data.get(key) is not None else None

    def required_text(self, key: str) -> str:
        value = self.text(key)
        if not value:
            raise errors.SpecError("required field is missing", field=self.at(key))
        return value

    def integer(self, key: str, default: int = 0) -> int:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(key, "an integer", value)
        return value

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._wrong(key, "a boolean", value)
        return value

    def mapping(self, key: str) -> Mapping[str, Any]:
        value = self.data.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self._wrong(key, "an object", value)
        return value

    def string_map(self, key: str) -> dict[str, str]:
        result: dict[str, str] = {}
        for name, value in self.mapping(key).items():
            if not isinstance(value, str):
                raise self._wrong(f"{key}.{name}", "a string", value)
            result[str(name)] = value
        return result

    def list(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, (list, tuple)):
            raise self._wrong(key, "a list", value)
        return list(value)

    def strings(self, key: str) -> tuple[str, ...]:
        items = self.list(key)
        for index, item in enumerate(items):
            if not isinstance(item, str):
                raise self._wrong(f"{key}[{index}]", "a string", item)
        return tuple(items)

    def enum(self, key: str, kind: type[E], default: E | None = None) -> E:
        value = self.data.get(key)
        if value is None:
            if default is None:
                raise errors.SpecError("required field is missing", field=self.at(key))
            return default
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(str(member.value) for member in kind)
            raise errors.SpecError(
                f"expected one of {allowed}, got {value!r}", field=self.at(key)
            ) from None

    def objects(self, key: str, kind: FromDict[T_co]) -> tuple[T_co, ...]:
        return tuple(
            kind.from_dict(item, field=self.at(f"{key}[{index}]"))
            for index, item in enumerate(self.list(key))
        )

    def optional_object(self, key: str, kind: FromDict[T_co]) -> T_co | None:
        value = self.data.get(key)
        return None if value is None else kind.from_dict(value, field=self.at(key))

    def required_object(self, key: str, kind: FromDict[T_co]) -> T_co:
        value = self.data.get(key)
        if value is None:
            raise errors.SpecError("required field is missing", field=self.at(key))
        return kind.from_dict(value, field=self.at(key))

    def optional_int_or_percent(self, key: str) -> quantities.IntOrPercent | None:
        value = self.data.get(key)
        return None if value is None else quantities.check_int_or_percent(value, field=self.at(key))

    def optional_duration(self, key: str) -> float | None:
        value = self.data.get(key)
        return None if value is None else quantities.parse_duration(value, field=self.at(key))
