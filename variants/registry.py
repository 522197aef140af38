"""A tiny name -> class registry, one per axis (the timm pattern).

Adding a variant is one class and one ``@REGISTRY.register("name")`` line; the builder looks
classes up by the name stored in the spec and never needs an ``if`` chain.
"""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, field: str) -> None:
        self.field = field  # the UNetSpec field whose values this registry resolves
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"{self.field}: variant name {name!r} must be a Python identifier")

        def add(cls: type[T]) -> type[T]:
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f"{self.field}: {name!r} is already registered to {self._classes[name].__qualname__}")
            self._classes[name] = cls
            return cls

        return add

    def unregister(self, name: str) -> None:
        self._classes.pop(name, None)

    def names(self) -> tuple[str, ...]:
        return tuple(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def get(self, name: str) -> type[T]:
        if name not in self._classes:
            raise ValueError(f"{self.field}={name!r} is not a registered variant; valid: {', '.join(self.names())}")
        return self._classes[name]
