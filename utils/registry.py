"""Name -> object registries filled by decorators.

Losses, attacks, center sets and datasets are each one :class:`Registry`; adding a new
one is registering one function, never editing an ``if``/``elif`` chain.

    LOSSES = Registry("loss")
    @LOSSES.register("mmc")
    def mmc_loss(...): ...
"""
from __future__ import annotations

from typing import Callable, Dict, Generic, Iterator, List, TypeVar

from utils.errors import UsageError

T = TypeVar("T")


class Registry(Generic[T]):
    """A dict of named entries that refuses duplicates and explains unknown names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: Dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; raises on a duplicate name."""

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise KeyError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        """The entry called ``name``; :class:`UsageError` naming the choices otherwise."""
        try:
            return self._entries[name]
        except KeyError:
            raise UsageError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> List[str]:
        """Sorted registered names (what ``--help`` lists)."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
