"""Grids of runs declared in TOML: axes over any config field, expanded to runs with stable ids.

A grid file has a ``[base]`` run config and one ``[[axis]]`` table per axis::

    name = "mixtures"

    [base]
    steps = 400
    [base.model]
    size = "tiny"
    # ... the rest of a run config (see docs/harness.md)

    [[axis]]
    name = "size"
    path = "model.size"
    values = ["tiny", "small"]

    [[axis]]
    name = "mix"
    path = "data.schedule"
    values = [{ mixture = { "text/python_code" = 0.5, modular = 0.5 } },
              { mixture = { "text/python_code" = 0.9, modular = 0.1 } }]
    labels = ["even", "code-heavy"]

    [[axis]]
    name = "seed"
    paths = ["init_seed", "data_seed"]   # one axis may set several fields together
    values = [0, 1]

The grid is the Cartesian product of the axes. Each run's id is built from the axis labels and
a short hash of its resolved config, so it is stable across invocations and changes whenever
the config changes (a changed run is never silently resumed with another config).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab.errors import DataError

__all__ = ["Axis", "Grid", "GridRun", "load_grid", "parse_grid", "set_path"]

_ID_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Axis:
    """One axis: the config fields it sets, its values and their labels."""

    name: str
    paths: tuple[str, ...]
    values: tuple[Any, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class GridRun:
    """One cell of a grid: a stable id, the resolved config and the axis labels."""

    run_id: str
    config: dict[str, Any]
    labels: dict[str, str]


@dataclass(frozen=True)
class Grid:
    name: str
    base: dict[str, Any]
    axes: tuple[Axis, ...]

    def runs(self) -> list[GridRun]:
        """Expand the grid (Cartesian product of the axes, in declaration order)."""
        out: list[GridRun] = []
        seen: dict[str, dict[str, str]] = {}
        for combo in itertools.product(*(range(len(a.values)) for a in self.axes)):
            config = copy.deepcopy(self.base)
            labels: dict[str, str] = {}
            for axis, i in zip(self.axes, combo, strict=True):
                for path in axis.paths:
                    set_path(config, path, copy.deepcopy(axis.values[i]))
                labels[axis.name] = axis.labels[i]
            digest = _digest(config)
            if digest in seen:
                raise DataError(
                    f"grid {self.name!r}: cells {seen[digest]} and {labels} have identical configs; "
                    "give each axis distinct values"
                )
            seen[digest] = labels
            run_id = _run_id(self.name, labels, digest)
            config["grid"] = {"name": self.name, "labels": labels}
            out.append(GridRun(run_id, config, labels))
        return out


def set_path(config: dict[str, Any], path: str, value: Any) -> None:
    """Set ``config["a"]["b"] = value`` for ``path = "a.b"``, creating tables on the way."""
    keys = path.split(".")
    node = config
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise DataError(f"axis path {path!r}: {key!r} is a value, not a table, in the base config")
        node = child
    node[keys[-1]] = value


def _label(value: Any) -> str:
    if isinstance(value, (str, int, float, bool)):
        return str(value)
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:6]


def _digest(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _run_id(grid: str, labels: Mapping[str, str], digest: str) -> str:
    parts = [grid, *(f"{k}-{v}" for k, v in labels.items()), digest]
    return _ID_SAFE.sub("-", "_".join(parts)).strip("-")


def parse_grid(spec: Mapping[str, Any], *, source: str = "grid") -> Grid:
    """Build a :class:`Grid` from a parsed TOML/JSON mapping, validating its shape."""
    allowed = {"name", "base", "axis"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise DataError(f"{source}: unknown top-level key(s) {unknown}; expected name, [base], [[axis]]")
    name = spec.get("name", "grid")
    if not isinstance(name, str) or not name:
        raise DataError(f"{source}: 'name' must be a non-empty string")
    base = spec.get("base")
    if not isinstance(base, dict):
        raise DataError(f"{source}: a [base] table with the run config is required")
    raw_axes = spec.get("axis", [])
    if not isinstance(raw_axes, list):
        raise DataError(f"{source}: axes are declared as [[axis]] tables")
    axes = []
    names: set[str] = set()
    for i, ax in enumerate(raw_axes):
        where = f"{source}: axis {i + 1}"
        if not isinstance(ax, dict):
            raise DataError(f"{where} must be a table")
        extra = sorted(set(ax) - {"name", "path", "paths", "values", "labels"})
        if extra:
            raise DataError(f"{where}: unknown key(s) {extra}; expected name, path or paths, values, labels")
        if ("path" in ax) == ("paths" in ax):
            raise DataError(f"{where}: give exactly one of 'path' or 'paths'")
        paths = (ax["path"],) if "path" in ax else tuple(ax["paths"])
        if not paths or not all(isinstance(p, str) and p for p in paths):
            raise DataError(f"{where}: paths must be non-empty dotted strings like 'model.size'")
        values = ax.get("values")
        if not isinstance(values, list) or not values:
            raise DataError(f"{where}: 'values' must be a non-empty list")
        labels = ax.get("labels", [_label(v) for v in values])
        if not isinstance(labels, list) or len(labels) != len(values):
            raise DataError(f"{where}: 'labels' must list one label per value ({len(values)})")
        if len(set(map(str, labels))) != len(labels):
            raise DataError(f"{where}: labels must be distinct, got {labels}")
        axis_name = ax.get("name", paths[0].rsplit(".", 1)[-1])
        if axis_name in names:
            raise DataError(f"{where}: duplicate axis name {axis_name!r}")
        names.add(axis_name)
        axes.append(Axis(axis_name, paths, tuple(values), tuple(map(str, labels))))
    return Grid(name=name, base=base, axes=tuple(axes))


def load_grid(path: str | Path) -> Grid:
    """Read a grid from a ``.toml`` (or ``.json``) file."""
    from scalelab._io import read_toml_or_json

    return parse_grid(read_toml_or_json(path, "grid"), source=str(path))


def select(runs: Sequence[GridRun], ids: Sequence[str] | None) -> list[GridRun]:
    """The runs whose ids are listed (all when ``ids`` is None); unknown ids raise."""
    if ids is None:
        return list(runs)
    known = {r.run_id: r for r in runs}
    missing = [i for i in ids if i not in known]
    if missing:
        raise DataError(f"unknown run id(s) {missing}; list them with `scalelab grid FILE --list`")
    return [known[i] for i in ids]
