"""Learning curves for the report: from a run store or from any tidy table, with run sizes.

A run store (``scalelab grid --store ROOT``) is exported with
:meth:`scalelab.store.runs.RunStore.export`; its evaluation rows (``split == 'eval'``) give
one accuracy curve per run and evaluation source (``metric == 'acc'``: the skills) and one
loss curve per run and source (``metric == 'loss'``). A run's size is its ``n_params`` (the
trainer records it) unless another column is named. Any other tidy table (for instance
Pythia's evaluations by checkpoint) is read with :func:`scalelab.curves.read_curves`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from scalelab.curves import CurveSet, read_curves
from scalelab.errors import DataError
from scalelab.store import Table, read_table

__all__ = ["CurveData", "RunSize", "curves_from_store", "curves_from_table", "human_count"]

_EVAL = "split == 'eval'"


@dataclass(frozen=True)
class RunSize:
    """The size a run belongs to: a sortable value and a label for legends and panels."""

    value: float | str
    label: str


@dataclass(frozen=True)
class CurveData:
    """What the learning-curve figures draw.

    Attributes
    ----------
    accuracy : CurveSet or None
        Accuracy-like curves (higher is better), one per run and skill.
    loss : CurveSet or None
        Loss curves per run and evaluation source (run stores only).
    sizes : mapping of str to RunSize
        Each run's size; runs without a size column are their own size.
    size_col : str or None
        The column the sizes come from.
    source : str
        Where the curves came from (store root or table).
    notes : tuple of str
        What was left out and why.
    """

    accuracy: CurveSet | None
    loss: CurveSet | None
    sizes: Mapping[str, RunSize]
    size_col: str | None
    source: str
    notes: tuple[str, ...] = ()

    def size_groups(self) -> list[tuple[RunSize, list[str]]]:
        """Runs grouped by size, smallest first (text sizes keep their order of appearance)."""
        runs: list[str] = []
        for curves in (self.accuracy, self.loss):
            if curves is not None:
                runs.extend(r for r in curves.runs if r not in runs)
        groups: dict[str, tuple[RunSize, list[str]]] = {}
        for run in runs:
            size = self.sizes[run]
            groups.setdefault(size.label, (size, []))[1].append(run)
        ordered = list(groups.values())
        if all(isinstance(size.value, float) for size, _ in ordered):
            ordered.sort(key=lambda item: float(item[0].value))
        return ordered


def human_count(value: float) -> str:
    """``98496 -> '98.5k'``, ``70426624 -> '70.4M'``, ``1.2e10 -> '12B'``."""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def curves_from_store(root: str, *, size_col: str | None = "n_params") -> CurveData:
    """Accuracy and loss curves of every run in a run store.

    Parameters
    ----------
    root : str
        The store's directory.
    size_col : str or None
        Column giving each run's size (default ``n_params``; ignored when the export lacks
        it, in which case every run is its own size).

    Raises
    ------
    DataError
        If the store is missing, has no records, or has no evaluation records.
    """
    from scalelab.store.runs import RunStore

    store = RunStore(root, create=False)
    table = store.export()
    notes = [f"store: {p}" for p in store.problems]
    if len(table) == 0:
        raise DataError(
            f"run store {root!r} has no metrics records; train runs into it first "
            "(scalelab grid FILE --store ROOT)"
        )
    for column in ("split", "source", "metric"):
        if column not in table.columns:
            raise DataError(f"run store {root!r} records have no {column!r} field; is it a scalelab run store?")
    evals = table.filter(table.mask(_EVAL))
    if len(evals) == 0:
        raise DataError(f"run store {root!r} has no evaluation records (split 'eval'); nothing to plot")
    if size_col is not None and size_col not in table.columns:
        notes.append(f"the store has no {size_col!r} column: each run is its own size")
        size_col = None
    metrics = set(evals.column("metric").tolist())
    common: dict[str, Any] = {
        "run_col": "run",
        "skill_col": "source",
        "tokens_col": "tokens" if "tokens" in table.columns else None,
        "flops_col": "flops" if "flops" in table.columns else None,
        "order_by": size_col,
    }
    accuracy = read_curves(evals, metric="acc", **common) if "acc" in metrics else None
    loss = read_curves(evals, metric="loss", **common) if "loss" in metrics else None
    if accuracy is None:
        notes.append("the store has no accuracy evaluations: no skill curves or emergence map")
    return CurveData(
        accuracy=accuracy,
        loss=loss,
        sizes=run_sizes(table, "run", size_col),
        size_col=size_col,
        source=str(root),
        notes=tuple(notes),
    )


def curves_from_table(
    source: Any,
    *,
    metric: str = "acc",
    run_col: str = "run",
    skill_col: str | None = None,
    step_col: str = "step",
    metric_col: str | None = None,
    value_col: str = "value",
    tokens_col: str | None = None,
    where: str | None = None,
    size_col: str | None = None,
) -> CurveData:
    """Accuracy-like curves from a tidy table (see :func:`scalelab.curves.read_curves`).

    Parameters
    ----------
    source : path, dataset name or Table
    metric, run_col, skill_col, step_col, metric_col, value_col, tokens_col, where
        As in :func:`scalelab.curves.read_curves`.
    size_col : str or None
        Column giving each run's size (e.g. ``params_total``); the runs are ordered and
        grouped by it. ``None``: every run is its own size.
    """
    table = read_table(source)
    if where:
        table = table.where(where)
    if size_col is not None:
        table.column(size_col)  # unknown column -> DataError listing the columns
    curves = read_curves(
        table,
        metric=metric,
        run_col=run_col,
        skill_col=skill_col,
        step_col=step_col,
        metric_col=metric_col,
        value_col=value_col,
        tokens_col=tokens_col,
        order_by=size_col if size_col is not None and table.kind(size_col) == "numeric" else None,
    )
    return CurveData(
        accuracy=curves,
        loss=None,
        sizes=run_sizes(table, run_col, size_col),
        size_col=size_col,
        source=table.source + (f" where {where}" if where else ""),
    )


def run_sizes(table: Table, run_col: str, size_col: str | None) -> dict[str, RunSize]:
    """Each run's size from ``size_col`` (constant within a run), or the run itself."""
    runs = _key_text(table, run_col)
    if size_col is None:
        return {str(r): RunSize(str(r), str(r)) for r in dict.fromkeys(runs.tolist())}
    numeric = table.kind(size_col) == "numeric"
    values = table.numeric(size_col) if numeric else _key_text(table, size_col)
    out: dict[str, RunSize] = {}
    for run in dict.fromkeys(runs.tolist()):
        mine = values[runs == run]
        distinct = np.unique(mine[np.isfinite(mine)]) if numeric else np.unique(mine)
        if len(distinct) != 1:
            raise DataError(
                f"run {run!r} has {len(distinct)} different values of the size column "
                f"{size_col!r}; name a column that is constant within each run"
            )
        value = distinct[0]
        if numeric:
            number = float(value)
            label = _number_label(number, size_col)
            out[str(run)] = RunSize(number, label)
        else:
            out[str(run)] = RunSize(str(value), str(value))
    return out


def _key_text(table: Table, column: str) -> np.ndarray:
    """A column as text keys, exactly as :func:`scalelab.curves.read_curves` names runs."""
    values = table.column(column)
    if values.dtype.kind == "O":
        return np.asarray(values, dtype=object)
    out = np.empty(len(values), dtype=object)
    for i, item in enumerate(values.tolist()):
        whole = isinstance(item, float) and math.isfinite(item) and item.is_integer()
        out[i] = str(int(item)) if whole else str(item)
    return out


def _number_label(value: float, column: str) -> str:
    if "param" in column.lower() and math.isfinite(value):
        return f"{human_count(value)} params"
    return f"{column} {value:.4g}"
