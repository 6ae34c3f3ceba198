"""A wrapper that keeps token values out of logs, reprs and exception messages."""
from __future__ import annotations

from typing import NoReturn


class Secret:
    """A secret string. `str()` and `repr()` never show it; call `reveal()` where the value is needed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError("a secret must be a non-empty string")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> NoReturn:  # pickling would be a way to leak it into a file
        raise TypeError("Secret values are not picklable")


def optional(value: str | None) -> Secret | None:
    return Secret(value) if value else None
