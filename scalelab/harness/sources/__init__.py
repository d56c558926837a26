"""Skill tasks and text domains for the harness (numpy only, no torch), and their registry.

``make_source(kind, **options)`` builds a source; ``source.config()`` returns
``{"kind": kind, **options}`` so ``make_source(**source.config())`` rebuilds it.

Kinds (eval-set skill names in brackets):

* ``modular`` -- ``a op b mod p`` with a seeded training fraction, the grokking testbed (Power et
  al. 2022) [``modadd``, ``modadd/train``];
* ``addition`` -- n-digit addition in four formats of the same content (Lee et al. 2023)
  [``addition``];
* ``parity`` -- multitask sparse parity with Zipf subtask frequencies (Michaud et al. 2023)
  [``parity/<i>``];
* ``compositional`` -- LEGO chained variable resolution, skill k needs skill k-1 (Zhang et al.
  2022; Chen et al. 2023, "Skill-it!") [``lego/<k>``];
* ``text`` -- byte-level stdlib code, docstrings or language reference [``text/<domain>``].

Examples
--------
>>> src = make_source("modular", p=7, train_fraction=0.5)
>>> make_source(**src.config()).config() == src.config()
True
"""

from __future__ import annotations

import inspect
from typing import Any

from scalelab.errors import DataError
from scalelab.harness.sources.addition import AdditionSource
from scalelab.harness.sources.base import BaseSource, Batch, EvalSet, ExampleTable, Source
from scalelab.harness.sources.compositional import CompositionalSource
from scalelab.harness.sources.modular import ModularSource
from scalelab.harness.sources.parity import ParitySource
from scalelab.harness.sources.text import TextSource

__all__ = [
    "AdditionSource",
    "BaseSource",
    "Batch",
    "CompositionalSource",
    "EvalSet",
    "ExampleTable",
    "ModularSource",
    "ParitySource",
    "Source",
    "TextSource",
    "available_sources",
    "make_source",
    "source_options",
]

_REGISTRY: dict[str, type[BaseSource]] = {
    cls.registry_kind: cls
    for cls in (ModularSource, AdditionSource, ParitySource, CompositionalSource, TextSource)
}


def available_sources() -> list[str]:
    """The registered source kinds, sorted."""
    return sorted(_REGISTRY)


def source_options(kind: str) -> dict[str, Any]:
    """Option name -> default (``inspect.Parameter.empty`` if required) of a source kind."""
    cls = _get(kind)
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def _get(kind: str) -> type[BaseSource]:
    try:
        return _REGISTRY[kind]
    except (KeyError, TypeError):
        raise DataError(f"unknown source kind {kind!r}; choose one of: {', '.join(available_sources())}") from None


def make_source(kind: str, **options: Any) -> Source:
    """Build a source from its kind and options.

    Parameters
    ----------
    kind : str
        One of :func:`available_sources`.
    **options
        The kind's options (see its class); unknown or missing ones raise.

    Returns
    -------
    Source
        The source, deterministic from its ``seed`` option.

    Raises
    ------
    DataError
        Unknown kind, unknown or missing option, or an invalid value.
    """
    cls = _get(kind)
    allowed = source_options(kind)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise DataError(
            f"unknown option(s) {', '.join(unknown)} for source kind {kind!r}; "
            f"valid options: {', '.join(sorted(allowed))}"
        )
    missing = sorted(k for k, v in allowed.items() if v is inspect.Parameter.empty and k not in options)
    if missing:
        raise DataError(f"source kind {kind!r} needs option(s) {', '.join(missing)}")
    return cls(**options)
