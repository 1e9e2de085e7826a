"""The immutable value objects commands and events are built from."""

from __future__ import annotations

from operator import attrgetter
from typing import Any, ClassVar

__all__ = ["Value", "field"]


class Value:
    """An immutable value: its fields live in private slots (``_name``) behind read-only
    attributes made by :func:`field`. ``__init__`` fills the slots with plain stores, the
    cheapest way to build an object; two values are equal when they are of the same class
    with equal fields."""

    __slots__ = ()

    _field_names: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            names.extend(slot[1:] for slot in klass.__dict__.get("__slots__", ()))
        cls._field_names = tuple(names)

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._field_names)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self) or not isinstance(other, Value):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((type(self), self._fields()))

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._field_names)
        return f"{type(self).__name__}({args})"


def field(name: str, doc: str) -> Any:
    """A read-only attribute over the private slot ``_name``."""
    return property(attrgetter("_" + name), doc=doc)
