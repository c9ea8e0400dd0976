"""Named extension points: built-ins registered in code, plugins found lazily by entry point."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from nbtoolkit.errors import InputError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> implementation map backed by an entry-point group.

    Built-ins are registered with :meth:`register` (or a factory with :meth:`register_factory`
    so nothing heavy is imported until used). Entry points in ``group`` are read on the first
    miss, once (papermill's engines, without its import-time loading).
    """

    def __init__(self, group: str, what: str) -> None:
        self.group = group
        self.what = what
        self._items: dict[str, T] = {}
        self._factories: dict[str, Callable[[], T]] = {}
        self._loaded_entry_points = False

    def register(self, name: str, item: T) -> None:
        self._items[name] = item

    def register_factory(self, name: str, factory: Callable[[], T]) -> None:
        self._factories[name] = factory

    def _load_entry_points(self) -> None:
        if self._loaded_entry_points:
            return
        self._loaded_entry_points = True
        for ep in entry_points(group=self.group):
            if ep.name not in self._items and ep.name not in self._factories:
                self._factories[ep.name] = ep.load

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(set(self._items) | set(self._factories))

    def get(self, name: str) -> T:
        """Return the implementation called ``name``.

        Raises:
            InputError: no such name; the message lists the known ones.
        """
        if name not in self._items and name not in self._factories:
            self._load_entry_points()
        if name not in self._items:
            factory = self._factories.get(name)
            if factory is None:
                raise InputError(f"Unknown {self.what} {name!r}; choose one of: {', '.join(self.names())}.")
            item = factory()
            self._items[name] = item() if isinstance(item, type) else item
        return self._items[name]
