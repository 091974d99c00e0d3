"""One name -> object registry class (in the spirit of BasicSR's ``Registry``) for every
catalogue of the toolkit: methods, networks, metrics, dataset sources (recipes), synthetic
degradations and pairing rules.

A name is registered once (a second registration is a bug, and raises KeyError); an unknown
name is one UserError that lists the known ones. ``load`` imports the modules that register
entries, the first time the registry is asked, so heavy dependencies load only when needed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """``what`` names the kind of entry in messages ("method", "network", ...)."""

    def __init__(self, what: str, load: Callable[[], None] | None = None):
        self.what = what
        self._entries: dict[str, T] = {}
        self._load = load

    def _loaded(self) -> dict[str, T]:
        if self._load is not None:
            load, self._load = self._load, None
            load()
        return self._entries

    def add(self, name: str, obj: T) -> T:
        if name in self._entries:
            raise KeyError(f"{self.what} {name!r} registered twice")
        self._entries[name] = obj
        return obj

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form: ``@REG.register("name")``."""
        return lambda obj: self.add(name, obj)

    def get(self, name: str) -> T:
        entries = self._entries if name in self._entries else self._loaded()
        if name not in entries:
            raise UserError(f"unknown {self.what} {name!r}; known: {', '.join(entries)}")
        return entries[name]

    def names(self) -> list[str]:
        return list(self._loaded())

    def items(self):
        return self._loaded().items()

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._loaded()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._loaded())
