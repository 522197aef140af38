"""A tiny name -> class registry, one per axis (the timm pattern).

Adding a variant is one class and one ``@REGISTRY.register("name")`` line; the builder looks
classes up by the name stored in the spec and never needs an ``if`` chain.
"""
from __future__ import annotations

import inspect
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, field: str, arguments: tuple[str, ...] = ()) -> None:
        self.field = field  # the UNetSpec field whose values this registry resolves
        self.arguments = arguments  # what the builder passes every class, positionally
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"{self.field}: variant name {name!r} must be a Python identifier")

        def add(cls: type[T]) -> type[T]:
            self._check_arguments(name, cls)
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f"{self.field}: {name!r} is already registered to {self._classes[name].__qualname__}")
            self._classes[name] = cls
            return cls

        return add

    def _check_arguments(self, name: str, cls: type[T]) -> None:
        """A class the builder could not call fails here, at registration, naming what it is called with (a block
        written before blocks took ``parts`` would otherwise fail deep inside the builder)."""
        if not self.arguments:
            return
        try:
            inspect.signature(cls).bind(*self.arguments)
        except TypeError:
            wanted = ", ".join(self.arguments)
            raise TypeError(f"{self.field}: {name!r} is {cls.__qualname__}{inspect.signature(cls)}, but the builder "
                            f"calls it as {cls.__qualname__}({wanted}); valid: def __init__(self, {wanted}) (blocks "
                            "take `parts`, the toolbox they build their layers with: docs/extending.md)") from None

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
