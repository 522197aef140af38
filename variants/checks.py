"""Validation shared by every config dataclass: one wording for one kind of bad value."""
from __future__ import annotations

from typing import Any


def check_positive_int(name: str, value: Any) -> None:
    """Raise ValueError unless ``value`` is an int of at least 1 (a bool is not an int here)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} is invalid; valid: a positive integer")
