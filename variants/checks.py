"""Validation shared by the spec, its axes and every config dataclass: one wording for one kind of bad value."""
from __future__ import annotations

from typing import Any


def is_int(value: Any, minimum: int = 1) -> bool:
    """An int (a bool is not one here) of at least ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def int_words(minimum: int) -> str:
    return {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")


def check_int(name: str, value: Any, minimum: int = 1) -> None:
    """Raise ValueError unless ``value`` is an int of at least ``minimum``."""
    if not is_int(value, minimum):
        raise ValueError(f"{name}={value!r} is invalid; valid: {int_words(minimum)}")


def check_int_tuple(name: str, value: Any, allow_empty: bool = True) -> None:
    """Raise ValueError unless ``value`` is a tuple of positive ints (and not empty, unless allowed)."""
    if not isinstance(value, tuple) or not all(map(is_int, value)) or (not allow_empty and not value):
        what = "a" if allow_empty else "a non-empty"
        raise ValueError(f"{name}={value!r} is invalid; valid: {what} tuple of positive integers")
