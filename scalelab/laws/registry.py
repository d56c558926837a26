"""The registry of laws by name: ``make_law("chinchilla")``."""

from __future__ import annotations

from typing import Any

from scalelab.errors import LawError
from scalelab.laws.base import Law

__all__ = ["available_laws", "get_law_class", "make_law", "register"]

_REGISTRY: dict[str, type[Law]] = {}


def register(cls: type[Law]) -> type[Law]:
    """Class decorator adding a law to the registry under ``cls.name``."""
    if not cls.name:
        raise LawError(f"{cls.__name__} has no registry name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise LawError(f"a law named {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def available_laws() -> list[str]:
    """Names of all registered laws, sorted."""
    return sorted(_REGISTRY)


def get_law_class(name: str) -> type[Law]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise LawError(
            f"unknown law {name!r}; choose one of: {', '.join(available_laws())}"
        ) from None


def make_law(name: str | Law, **config: Any) -> Law:
    """Build a law from its registry name and constructor options (a Law passes through)."""
    if isinstance(name, Law):
        if config:
            raise LawError("options can only be given with a law name, not a Law instance")
        return name
    cls = get_law_class(name)
    try:
        return cls(**config)
    except TypeError as exc:
        raise LawError(f"bad options for law {name!r}: {exc}") from None
