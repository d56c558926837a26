"""Small public scaling datasets bundled with scalelab, each with its provenance.

Every dataset is a CSV file in ``scalelab/datasets/data/`` with a JSON file beside it that
records the citation, the source repository and commit, the meaning of each column, and a
licence note. The files are located with :mod:`importlib.resources`, so they work from an
installed wheel or zip as well as from a source checkout.

Examples
--------
>>> from scalelab import datasets
>>> datasets.available()
['chinchilla']
>>> table = datasets.load("chinchilla")
>>> len(table), len(table.where("excluded_by_epoch == 0"))
(245, 240)
"""

from __future__ import annotations

import copy
import difflib
import json
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from scalelab.errors import DataError
from scalelab.store.readers import parse_delimited
from scalelab.store.table import Table

__all__ = ["available", "info", "load"]

_PACKAGE = "scalelab.datasets"
_DATA_DIR = "data"


def available() -> list[str]:
    """Return the names of the bundled datasets.

    Returns
    -------
    list[str]
        Sorted dataset names, e.g. ``["chinchilla"]``.
    """
    return list(_catalogue())


def load(name: str) -> Table:
    """Load a bundled dataset as a :class:`~scalelab.store.Table`.

    Parameters
    ----------
    name : str
        A name from :func:`available`.

    Returns
    -------
    Table
        The full dataset; its :attr:`~scalelab.store.Table.source` is ``name``.

    Raises
    ------
    DataError
        If there is no such dataset (the message lists the available ones).
    """
    return _load(_check(name))


def info(name: str) -> dict[str, Any]:
    """Return the provenance record of a bundled dataset.

    Parameters
    ----------
    name : str
        A name from :func:`available`.

    Returns
    -------
    dict
        A fresh copy with keys including ``name``, ``title``, ``description``, ``rows``,
        ``citation``, ``source`` (repository, commit, path), ``columns`` (name ->
        meaning), ``notes``, ``license`` and ``sha256`` of the bundled CSV.

    Raises
    ------
    DataError
        If there is no such dataset.
    """
    return copy.deepcopy(_catalogue()[_check(name)])


def _check(name: str) -> str:
    catalogue = _catalogue()
    if isinstance(name, str) and name in catalogue:
        return name
    close = difflib.get_close_matches(str(name), list(catalogue), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise DataError(
        f"unknown dataset {str(name)!r}{hint}; available: {', '.join(catalogue) or '(none)'}"
    )


@lru_cache(maxsize=1)
def _catalogue() -> dict[str, dict[str, Any]]:
    """Read every provenance JSON in the data directory, keyed by dataset name."""
    entries: dict[str, dict[str, Any]] = {}
    folder = resources.files(_PACKAGE).joinpath(_DATA_DIR)
    for item in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if not item.name.endswith(".json"):
            continue
        record = json.loads(item.read_text(encoding="utf-8"))
        entries[record["name"]] = record
    return dict(sorted(entries.items()))


@cache
def _load(name: str) -> Table:
    record = _catalogue()[name]
    text = resources.files(_PACKAGE).joinpath(_DATA_DIR, record["file"]).read_text(encoding="utf-8")
    return parse_delimited(text, name)
