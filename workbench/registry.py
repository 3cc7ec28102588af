"""Explicit registries: ``@sources.register("parquet")`` beside the class, lookups by name.

Third parties add entries through the entry-point group given to :class:`Registry`; those are
loaded on the first lookup that misses, never at import time.
"""
from __future__ import annotations

from importlib import metadata
from typing import Callable, Generic, TypeVar

from .errors import ConfigError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → object mapping with a "did you mean" error on a miss.

    Parameters
    ----------
    kind : str
        What is registered ("source", "detector"), used in error messages.
    entry_point_group : str, optional
        Entry-point group scanned once, lazily, when a name is not found.
    """

    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._items: dict[str, T] = {}
        self._entry_points_loaded = entry_point_group is None

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; a second registration of a name fails."""

        def decorator(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ConfigError(f"{self.kind} {name!r} is registered twice (two plugins or modules claim the name)")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` or raise :class:`UnknownNameError`."""
        if name not in self._items and not self._entry_points_loaded:
            self._load_entry_points()
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, list(self._items)) from None

    def names(self) -> list[str]:
        """Sorted registered names (entry points included)."""
        if not self._entry_points_loaded:
            self._load_entry_points()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def _load_entry_points(self) -> None:
        self._entry_points_loaded = True
        for ep in metadata.entry_points(group=self.entry_point_group):
            if ep.name not in self._items:
                self._items[ep.name] = ep.load()
