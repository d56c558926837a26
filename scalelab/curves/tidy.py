"""Read learning curves from one tidy (long) table: one row per run, step, skill and metric.

The table may come from any source :func:`scalelab.store.read_table` reads (CSV, TSV, JSON
Lines, JSON, Parquet, a DataFrame, a mapping of columns). Column names are given by the user.
Two layouts are accepted:

* **long** -- a metric column (default ``metric``) names what each row measures and a value
  column (default ``value``) holds the number; rows of other metrics are ignored;
* **wide** -- no metric column: the metric is itself a column (``--metric loss`` reads the
  column ``loss``).

Validation is strict, and every handling of untidy input is stated in the curve's ``notes``:

* steps out of order are **sorted** (stably) within each curve;
* rows repeating a (run, seed, skill, step) are **dropped** when they are identical in value,
  tokens, FLOPs and standard error; if they differ the read fails with a
  :class:`~scalelab.errors.DataError` naming the columns that tell them apart;
* non-numeric, missing or infinite values, negative steps, tokens or FLOPs that decrease with
  step, and a metric absent from the table all raise :class:`~scalelab.errors.DataError`;
* one-point curves are kept: the analyses report them as ``insufficient``, never a number.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from scalelab.errors import DataError
from scalelab.store import Table, read_table

__all__ = ["Curve", "CurveSet", "read_curves"]

_MAX_LISTED = 15


@dataclass(frozen=True)
class Curve:
    """One learning curve: a metric of one run (and seed) on one skill, sorted by step.

    Parameters
    ----------
    run, skill, seed : str
        Identity of the curve; ``skill`` and ``seed`` are ``""`` when the table has no such
        column.
    metric : str
        What ``value`` measures (``acc``, ``loss``, ...).
    step : numpy.ndarray
        Strictly increasing, non-negative evaluation steps (read-only).
    value : numpy.ndarray
        The metric at each step (read-only).
    tokens, flops, stderr : numpy.ndarray or None
        Tokens seen and FLOPs spent by each step (non-decreasing), and the standard error of
        each value (evaluation noise), when the table has those columns.
    chance : float or None
        The metric's chance level (e.g. 0.25 for four-way multiple choice), when known.
    notes : tuple of str
        How untidy input was handled (sorting, dropped duplicates).
    """

    run: str
    skill: str
    metric: str
    step: np.ndarray
    value: np.ndarray
    tokens: np.ndarray | None = None
    flops: np.ndarray | None = None
    stderr: np.ndarray | None = None
    seed: str = ""
    chance: float | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.step)
        for name in ("step", "value", "tokens", "flops", "stderr"):
            array = getattr(self, name)
            if array is None:
                continue
            array = np.array(array, dtype=np.float64)
            if array.shape != (n,):
                raise DataError(
                    f"curve {self.label}: {name} has {array.size} values for {n} steps; "
                    "give one per step"
                )
            array.flags.writeable = False
            object.__setattr__(self, name, array)
        if n and (not np.all(np.isfinite(self.step)) or np.any(np.diff(self.step) <= 0)):
            raise DataError(
                f"curve {self.label}: steps must be finite and strictly increasing; "
                "build curves with read_curves, which sorts and de-duplicates them"
            )

    @property
    def label(self) -> str:
        """``run / skill [seed]`` for messages and tables."""
        text = self.run if not self.skill else f"{self.run} / {self.skill}"
        return f"{text} [seed {self.seed}]" if self.seed else text

    @property
    def n_points(self) -> int:
        """Number of evaluation points."""
        return len(self.step)


@dataclass(frozen=True)
class CurveSet:
    """The curves read from one table, in the order of the table's first appearance.

    Parameters
    ----------
    curves : tuple of Curve
    metric : str
    source : str
        Where the table came from.
    fingerprint : str
        SHA-256 of the filtered table (see :meth:`scalelab.store.Table.fingerprint`).
    where : str or None
        The row filter that was applied.
    notes : tuple of str
        Table-level handling (rows dropped as identical duplicates, curves sorted).
    """

    curves: tuple[Curve, ...]
    metric: str
    source: str
    fingerprint: str
    where: str | None = None
    notes: tuple[str, ...] = field(default=())

    def __iter__(self) -> Iterator[Curve]:
        return iter(self.curves)

    def __len__(self) -> int:
        return len(self.curves)

    @property
    def runs(self) -> tuple[str, ...]:
        """Distinct runs, in order."""
        return tuple(dict.fromkeys(c.run for c in self.curves))

    @property
    def skills(self) -> tuple[str, ...]:
        """Distinct skills, in order."""
        return tuple(dict.fromkeys(c.skill for c in self.curves))

    def select(self, *, run: str | None = None, skill: str | None = None) -> tuple[Curve, ...]:
        """The curves of one run and/or one skill (every seed).

        Raises
        ------
        DataError
            If nothing matches; the message lists the runs or skills there are.
        """
        if run is not None and run not in self.runs:
            raise DataError(f"run {run!r} is not in {self.source}; runs: {_listed(self.runs)}")
        if skill is not None and skill not in self.skills:
            raise DataError(
                f"skill {skill!r} is not in {self.source}; skills: {_listed(self.skills)}"
            )
        chosen = tuple(
            c
            for c in self.curves
            if (run is None or c.run == run) and (skill is None or c.skill == skill)
        )
        if not chosen:
            raise DataError(f"run {run!r} has no curve for skill {skill!r} in {self.source}")
        return chosen


def read_curves(
    source: Any,
    *,
    metric: str,
    run_col: str | None = "run",
    step_col: str = "step",
    skill_col: str | None = None,
    metric_col: str | None = None,
    value_col: str = "value",
    tokens_col: str | None = None,
    flops_col: str | None = None,
    stderr_col: str | None = None,
    seed_col: str | None = None,
    chance_col: str | None = None,
    where: str | None = None,
    order_by: str | None = None,
) -> CurveSet:
    """Read every (run, seed, skill) curve of one metric from a tidy table.

    Parameters
    ----------
    source : path, dataset name, Table, DataFrame or mapping of columns
        Anything :func:`scalelab.store.read_table` reads.
    metric : str
        The metric to read (``"acc"``). In the long layout, the value to match in
        ``metric_col``; in the wide layout, the name of the column holding it.
    run_col, skill_col, seed_col : str or None
        Columns identifying a curve; ``None`` means the table holds one run / skill / seed.
    step_col : str
        Evaluation step (non-negative).
    metric_col : str or None
        The long layout's metric column. ``None`` uses ``"metric"`` if the table has that
        column and the wide layout otherwise.
    value_col : str
        The long layout's value column.
    tokens_col, flops_col, stderr_col : str or None
        Tokens seen and FLOPs spent by each step, and the standard error of each value.
    chance_col : str or None
        The chance level of each row's metric; it must be constant within a curve.
    where : str or None
        Row filter applied first, e.g. ``"num_fewshot == 0 and deduped == 0"``.
    order_by : str or None
        A numeric column (e.g. parameter count) to order runs by (smallest first); runs keep
        their order of first appearance otherwise.

    Returns
    -------
    CurveSet

    Raises
    ------
    DataError
        For an unknown column, a metric the table does not have (the message lists those it
        has), non-numeric or missing values, negative steps, conflicting duplicate rows, or
        tokens / FLOPs that decrease with step.

    Examples
    --------
    >>> curves = read_curves(
    ...     "../shared/data/pythia_v1_evals_by_checkpoint.csv", metric="acc",
    ...     run_col="model", skill_col="task", where="num_fewshot == 0 and deduped == 0",
    ... )  # doctest: +SKIP
    >>> len(curves.select(run="pythia-70m", skill="piqa")[0].step)  # doctest: +SKIP
    27
    """
    table = read_table(source)
    if where:
        table = table.where(where)
    values_col, table = _metric_rows(table, metric, metric_col, value_col)
    n = len(table)
    keys = {
        name: _key_text(table, col) if col else np.full(n, "", dtype=object)
        for name, col in (("run", run_col), ("seed", seed_col), ("skill", skill_col))
    }
    step = table.numeric(step_col)
    if np.any(step < 0):
        bad = int(np.flatnonzero(step < 0)[0])
        raise DataError(
            f"column {step_col!r} has negative steps (first at row {int(table.row_numbers[bad])}: "
            f"{step[bad]:g}); steps count updates from 0, filter them with --where"
        )
    value = table.numeric(values_col)
    extra = {
        name: _non_negative(table, col) if col else None
        for name, col in (("tokens", tokens_col), ("flops", flops_col), ("stderr", stderr_col))
    }
    chance = table.numeric(chance_col) if chance_col else None
    rank = _run_rank(table, keys["run"], order_by)

    combined = np.array(
        [
            f"{r}\x1f{s}\x1f{k}"
            for r, s, k in zip(keys["run"], keys["seed"], keys["skill"], strict=True)
        ],
        dtype=object,
    )
    _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
    groups = sorted(range(len(first)), key=lambda g: (rank[first[g]], first[g]))
    order_rows = np.argsort(inverse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(inverse, minlength=len(first)))])

    curves = []
    n_sorted = n_dropped = 0
    for g in groups:
        rows = order_rows[bounds[g] : bounds[g + 1]]  # table order within the group
        i0 = int(rows[0])
        identity = {k: str(v[i0]) for k, v in keys.items()}
        curve, was_sorted, dropped = _build_curve(
            table, rows, identity, metric, step, value, extra, step_col, values_col
        )
        if chance is not None:
            curve = _with_chance(curve, chance[rows], chance_col or "")
        n_sorted += was_sorted
        n_dropped += dropped
        curves.append(curve)
    notes = []
    if n_sorted:
        notes.append(f"sorted the steps of {n_sorted} curve(s) that were out of order")
    if n_dropped:
        notes.append(f"dropped {n_dropped} row(s) repeating an identical (run, skill, step) row")
    return CurveSet(
        curves=tuple(curves),
        metric=metric,
        source=table.source,
        fingerprint=table.fingerprint(),
        where=where,
        notes=tuple(notes),
    )


# -------------------------------------------------------------------------------- helpers
def _metric_rows(
    table: Table, metric: str, metric_col: str | None, value_col: str
) -> tuple[str, Table]:
    """Pick the layout; return the column holding the metric and the rows measuring it."""
    if metric_col is None and "metric" in table.columns:
        metric_col = "metric"
    if metric_col is None:  # wide layout: the metric is a column
        if metric not in table.columns:
            raise DataError(
                f"metric {metric!r} is not a column of {table.source} and the table has no "
                f"'metric' column; give --metric-col and --value-col for a long table, or one "
                f"of its columns: {_listed(table.columns)}"
            )
        return metric, table
    names = _key_text(table, metric_col)
    table.column(value_col)  # unknown value column -> DataError listing the columns
    mask = names == metric
    if not mask.any():
        available = tuple(dict.fromkeys(names.tolist()))
        raise DataError(
            f"metric {metric!r} is not in column {metric_col!r} of {table.source}; "
            f"available metrics: {_listed(available)}"
        )
    return value_col, table.filter(mask)


def _key_text(table: Table, col: str) -> np.ndarray:
    """A column as text keys; whole numbers print without a decimal point."""
    array = table.column(col)
    if array.dtype.kind == "O":
        return np.asarray(array, dtype=object)
    out = np.empty(len(array), dtype=object)
    for i, item in enumerate(array.tolist()):
        if isinstance(item, float) and math.isfinite(item) and item.is_integer():
            out[i] = str(int(item))
        else:
            out[i] = str(item)
    return out


def _non_negative(table: Table, col: str) -> np.ndarray:
    values = table.numeric(col)
    if np.any(values < 0):
        bad = int(np.flatnonzero(values < 0)[0])
        raise DataError(
            f"column {col!r} has negative values (first at row {int(table.row_numbers[bad])}: "
            f"{values[bad]:g}); counts and standard errors cannot be negative"
        )
    return values


def _run_rank(table: Table, runs: np.ndarray, order_by: str | None) -> np.ndarray:
    """Per row, the sort key of its run: the run's smallest ``order_by`` value, or 0."""
    if order_by is None:
        return np.zeros(len(table))
    values = table.numeric(order_by)
    smallest: dict[str, float] = {}
    for run, v in zip(runs.tolist(), values.tolist(), strict=True):
        smallest[run] = min(v, smallest.get(run, math.inf))
    return np.array([smallest[r] for r in runs.tolist()])


def _build_curve(
    table: Table,
    rows: np.ndarray,
    identity: dict[str, str],
    metric: str,
    step: np.ndarray,
    value: np.ndarray,
    extra: dict[str, np.ndarray | None],
    step_col: str,
    value_col: str,
) -> tuple[Curve, bool, int]:
    """Sort one group's rows by step, drop identical repeats, reject conflicting ones."""
    label = identity["run"] + (f" / {identity['skill']}" if identity["skill"] else "")
    label += f" [seed {identity['seed']}]" if identity["seed"] else ""
    was_sorted = bool(np.any(np.diff(step[rows]) < 0))
    rows = rows[np.argsort(step[rows], kind="stable")]
    s = step[rows]
    repeat = np.concatenate([[False], np.diff(s) == 0])
    fields = {"value": value, **{k: v for k, v in extra.items() if v is not None}}
    for j in np.flatnonzero(repeat):
        a, b = int(rows[j - 1]), int(rows[j])
        differing = [k for k, v in fields.items() if v[a] != v[b]]
        if differing:
            _conflict(table, a, b, label, s[j], differing, step_col, value_col, value)
    keep = rows[~repeat]
    for name in ("tokens", "flops"):
        counts = extra[name]
        if counts is not None and np.any(np.diff(counts[keep]) < 0):
            k = int(np.flatnonzero(np.diff(counts[keep]) < 0)[0])
            raise DataError(
                f"curve {label}: {name} decrease from {counts[keep][k]:g} at step "
                f"{step[keep][k]:g} to {counts[keep][k + 1]:g} at step {step[keep][k + 1]:g}; "
                f"{name} must accumulate with step (check the column, or give --seed-col if "
                "seeds are mixed in one run)"
            )
    notes = []
    if was_sorted:
        notes.append("steps were out of order and have been sorted")
    dropped = int(repeat.sum())
    if dropped:
        notes.append(f"dropped {dropped} identical repeated row(s)")
    curve = Curve(
        run=identity["run"],
        skill=identity["skill"],
        seed=identity["seed"],
        metric=metric,
        step=step[keep],
        value=value[keep],
        notes=tuple(notes),
        **{k: (None if v is None else v[keep]) for k, v in extra.items()},
    )
    return curve, was_sorted, dropped


def _with_chance(curve: Curve, levels: np.ndarray, col: str) -> Curve:
    """Attach the curve's chance level, which must be the same on all of its rows."""
    if np.ptp(levels) > 0:
        raise DataError(
            f"curve {curve.label} has different chance levels in column {col!r} "
            f"({levels.min():g} to {levels.max():g}); give one chance level per run and skill"
        )
    return replace(curve, chance=float(levels[0]))


def _conflict(
    table: Table,
    a: int,
    b: int,
    label: str,
    at: float,
    differing: Sequence[str],
    step_col: str,
    value_col: str,
    value: np.ndarray,
) -> None:
    """Raise for two rows of one curve at one step that disagree."""
    others = [
        name
        for name in table.columns
        if name not in (step_col, value_col) and not _same(table.column(name), a, b)
    ]
    hint = (
        f"they differ in {_listed(others)}: keep one with --where on those columns, or name "
        "the column that separates curves (--seed-col, --skill-col, --run-col)"
        if others
        else "remove one of them"
    )
    ra, rb = int(table.row_numbers[a]), int(table.row_numbers[b])
    what = "values" if "value" in differing else ", ".join(differing)
    raise DataError(
        f"curve {label} has two rows at step {at:g} with different {what} "
        f"(rows {ra} and {rb}: {value[a]:g} vs {value[b]:g}); {hint}"
    )


def _same(col: np.ndarray, a: int, b: int) -> bool:
    x, y = col[a], col[b]
    if isinstance(x, float) and math.isnan(x):
        return isinstance(y, float) and math.isnan(y)
    return bool(x == y)


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(str(n) for n in names[:_MAX_LISTED])
    return shown + (f", ... ({len(names)} in all)" if len(names) > _MAX_LISTED else "")
