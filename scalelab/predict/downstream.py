"""Downstream accuracy of a larger model, predicted two ways from a ladder of small runs.

* **Two-step** (Bhagia et al. 2024, arXiv:2412.04403): step 1 fits the task loss (bits per
  byte) against ``(N, D)`` with a Chinchilla-form law on the *final* checkpoints of the ladder
  runs (each the mean of the last ``window`` evaluations); step 2 fits accuracy against that
  task loss with a sigmoid whose high-loss end is fixed at chance, on the later checkpoints
  of every run (the first ``skip`` share of each run's checkpoints dropped, then a trailing
  moving average over ``smooth`` checkpoints of both). The prediction chains the two.
* **Direct** (Krajewski et al. 2025, arXiv:2512.08894; Hu et al. 2023): one chance-floored
  law of accuracy against compute ``C = 6 N D`` (:class:`~scalelab.laws.gompertz.Gompertz`,
  :class:`~scalelab.laws.sigmoid.Sigmoid`) or against ``(N, D)``
  (:class:`~scalelab.laws.gompertz_nd.GompertzND`), fitted to the later checkpoints of every
  run.

Both return a :class:`~scalelab.predict.chain.Chain` (save it with ``.save``; ``scalelab
predict CHAIN.json --at N=... D=...`` reads it) whose intervals carry the bootstrap of every
fit, resampled by run, and each fit's observation noise. :func:`score_targets` scores a chain
on held-out runs. The tables come in tidy form, one row per (run, checkpoint); long tables
with one row per metric become that with :func:`checkpoint_table`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scalelab.errors import DataError, LawError
from scalelab.predict.chain import Chain
from scalelab.store.table import Table

__all__ = [
    "TargetScore",
    "checkpoint_table",
    "final_values",
    "fit_direct",
    "fit_two_step",
    "mean_absolute_error",
    "moving_average",
    "read_tables",
    "score_targets",
]

MetricSpec = str | Sequence[str] | Mapping[str, float]


# ----------------------------------------------------------------------------- tables
def read_tables(data: Any, *, where: str | None = None) -> Table:
    """Read one table, or several with the same columns stacked into one.

    Parameters
    ----------
    data : path, Table, DataFrame, mapping, or a list/tuple of these
        E.g. the OLMo ladder's bits-per-byte and accuracy files, which share their columns.
    where : str, optional
        Row filter applied after stacking.

    Raises
    ------
    DataError
        If the list is empty, the tables' columns differ, or no row is left.
    """
    return _read(data, where)


def _read(data: Any, where: str | None = None) -> Table:
    """One table from a source or a list/tuple of sources with the same columns."""
    from scalelab.store import read_table

    if isinstance(data, (list, tuple)):
        if not data:
            raise DataError("no data given: the list of tables is empty")
        tables = [read_table(d) for d in data]
        cols = tables[0].columns
        for t in tables[1:]:
            if set(t.columns) != set(cols):
                raise DataError(
                    f"{t.source} has columns {sorted(t.columns)} but {tables[0].source} has "
                    f"{sorted(cols)}; tables combined into one must have the same columns"
                )
        merged = {c: np.concatenate([np.asarray(t.column(c), dtype=object) if t.kind(c) == "text"
                                     else t.column(c) for t in tables]) for c in cols}
        table = Table.from_columns(merged, source=" + ".join(t.source for t in tables))
    else:
        table = read_table(data)
    if where:
        table = table.where(where)
    if len(table) == 0:
        raise DataError(f"{table.source} has no rows; pass a table of checkpoints")
    return table


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique values and the code of every row (works for text and numbers)."""
    uniq, inverse = np.unique(values, return_inverse=True)
    return uniq, inverse.ravel()


def _groups(table: Table, index: Sequence[str]) -> tuple[np.ndarray, int]:
    """A group id per row for the combination of ``index`` columns, and the group count."""
    combined = np.zeros(len(table), dtype=np.int64)
    for name in index:
        _, code = _codes(table.column(name))
        combined = combined * (int(code.max()) + 1 if code.size else 1) + code
    _, gid = np.unique(combined, return_inverse=True)
    return gid.ravel(), int(gid.max()) + 1 if gid.size else 0


def _metric_weights(spec: MetricSpec, name: str) -> dict[str, float]:
    if isinstance(spec, str):
        return {spec: 1.0}
    if isinstance(spec, Mapping):
        weights = {str(k): float(v) for k, v in spec.items()}
    else:
        weights = {str(k): 1.0 for k in spec}
    if not weights:
        raise DataError(f"column {name!r}: give at least one metric to average")
    bad = [k for k, w in weights.items() if not (math.isfinite(w) and w > 0)]
    if bad:
        raise DataError(f"column {name!r}: metric weights must be positive numbers ({bad})")
    return weights


def checkpoint_table(
    data: Any,
    *,
    columns: Mapping[str, MetricSpec],
    index: Sequence[str] = ("run", "step"),
    metric: str = "metric",
    value: str = "value",
    keep: Sequence[str] = (),
    where: str | None = None,
) -> Table:
    """Turn a long table (one row per metric) into one row per checkpoint.

    Parameters
    ----------
    data : path, Table, DataFrame, mapping, or a list of these with the same columns
        Long-format evaluations, e.g. ``run, step, tokens, n_params, metric, value``.
    columns : mapping of new column -> metric name, list of names, or {name: weight}
        Each new column is the (weighted) mean of the listed metrics at that checkpoint, e.g.
        ``{"bpb": "piqa_val_rc_5shot_bpb", "acc": "piqa_val_rc_5shot_len_norm"}``.
        Checkpoints missing any listed metric are dropped.
    index : sequence of str
        Columns identifying a checkpoint.
    metric, value : str
        The columns holding the metric name and its value.
    keep : sequence of str
        Columns to carry over (their value at the checkpoint's first row), e.g. ``tokens``.
    where : str, optional
        Row filter applied first (``"num_fewshot == 0"``).

    Returns
    -------
    Table
        Columns ``index + keep + columns``, sorted by ``index``.

    Raises
    ------
    DataError
        If a metric is absent (the message suggests close names), a checkpoint has the same
        metric twice, or no checkpoint has every metric.
    """
    table = _read(data, where)
    if table.kind(metric) != "text":
        raise DataError(f"column {metric!r} must hold metric names (text)")
    names = table.column(metric)
    values = table.numeric(value)
    present = set(np.unique(names).tolist())
    specs = {out: _metric_weights(spec, out) for out, spec in columns.items()}
    for out, weights in specs.items():
        for m in weights:
            if m not in present:
                close = difflib.get_close_matches(m, sorted(present), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise DataError(
                    f"metric {m!r} (for column {out!r}) is not in column {metric!r} of "
                    f"{table.source}{hint}"
                )
    gid, n_groups = _groups(table, index)
    ok = np.ones(n_groups, dtype=bool)
    results: dict[str, np.ndarray] = {}
    for out, weights in specs.items():
        total = np.zeros(n_groups)
        wsum = np.zeros(n_groups)
        count = np.zeros(n_groups, dtype=np.int64)
        for m, w in weights.items():
            rows = names == m
            per = np.bincount(gid[rows], minlength=n_groups)
            if np.any(per > 1):
                g = int(np.argmax(per > 1))
                first = int(np.flatnonzero(rows & (gid == g))[0])
                where_txt = ", ".join(f"{k}={table.column(k)[first]}" for k in index)
                raise DataError(
                    f"metric {m!r} appears {int(per[g])} times at {where_txt}; add an index "
                    "column or a where filter so each checkpoint has it once"
                )
            total += np.bincount(gid[rows], weights=w * values[rows], minlength=n_groups)
            wsum += np.bincount(gid[rows], weights=np.full(rows.sum(), w), minlength=n_groups)
            count += per
        ok &= count == len(weights)
        with np.errstate(invalid="ignore", divide="ignore"):
            results[out] = total / wsum
    for v in results.values():
        ok &= np.isfinite(v)
    if not ok.any():
        raise DataError(
            f"no checkpoint of {table.source} has every metric of {sorted(specs)}; check the "
            "metric names and the where filter"
        )
    first_row = np.full(n_groups, -1, dtype=np.int64)
    order = np.arange(len(table))[::-1]
    first_row[gid[order]] = order  # the last write is the smallest row index
    keep_groups = np.flatnonzero(ok)
    rep = first_row[keep_groups]
    cols: dict[str, Any] = {}
    for name in (*index, *keep):
        cols[name] = np.asarray(table.column(name))[rep]
    for out, v in results.items():
        cols[out] = v[keep_groups]
    sort_keys = [np.asarray(cols[name]) for name in reversed(tuple(index))]
    perm = np.lexsort(sort_keys)
    return Table.from_columns({k: np.asarray(v)[perm] for k, v in cols.items()},
                              source=f"checkpoints of {table.source}")


def moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` points; the first points average what exists so far."""
    x = np.asarray(x, dtype=float)
    if window < 1:
        raise DataError(f"moving-average window must be at least 1, got {window}")
    c = np.cumsum(x)
    out = c / np.arange(1, x.size + 1)
    if x.size > window:
        out[window:] = (c[window:] - c[:-window]) / window
    return out


def _runs(table: Table, run: str, step: str) -> list[tuple[Any, np.ndarray]]:
    """(run id, row indices sorted by step) for every run, in order of first appearance."""
    ids = table.column(run)
    steps = table.numeric(step)
    uniq, first = np.unique(ids, return_index=True)
    out = []
    for k in np.argsort(first):
        rows = np.flatnonzero(ids == uniq[k])
        out.append((uniq[k], rows[np.argsort(steps[rows], kind="stable")]))
    return out


def final_values(
    data: Any,
    *,
    y: str | Sequence[str],
    run: str = "run",
    step: str = "step",
    window: int = 5,
    keep: Sequence[str] = (),
    where: str | None = None,
) -> Table:
    """One row per run: the mean of its last ``window`` checkpoints of each ``y`` column.

    Averaging the last few evaluations removes checkpoint-to-checkpoint noise from a run's
    final value (Bhagia et al. 2024 average the last 5; their published 13B "actual"
    accuracies are those means). ``keep`` columns take their value at the last checkpoint
    (``tokens`` there is the run's training length).

    Returns
    -------
    Table
        Columns ``run``, ``keep...``, ``y...`` and ``n_averaged``.
    """
    if window < 1:
        raise DataError(f"window must be at least 1 checkpoint, got {window}")
    table = _read(data, where)
    ys = [y] if isinstance(y, str) else list(y)
    yv = {name: table.numeric(name) for name in ys}
    cols: dict[str, list[Any]] = {run: [], **{k: [] for k in keep}, **{k: [] for k in ys},
                                  "n_averaged": []}
    kept = {k: np.asarray(table.column(k)) for k in keep}
    for rid, rows in _runs(table, run, step):
        last = rows[-window:]
        cols[run].append(rid)
        for k in keep:
            cols[k].append(kept[k][rows[-1]])
        for k in ys:
            cols[k].append(float(np.mean(yv[k][last])))
        cols["n_averaged"].append(len(last))
    return Table.from_columns(cols, source=f"final values of {table.source}")


def _later_checkpoints(
    table: Table, *, run: str, step: str, skip: float, smooth: int, smoothed: Sequence[str],
    raw: Sequence[str],
) -> dict[str, np.ndarray]:
    """Every run's checkpoints after its first ``skip`` share, ``smoothed`` columns averaged."""
    if not 0 <= skip < 1:
        raise DataError(f"skip must be a share of checkpoints in [0, 1), got {skip}")
    sm = {k: table.numeric(k) for k in smoothed}
    rw = {k: np.asarray(table.column(k)) for k in raw}
    out: dict[str, list[np.ndarray]] = {k: [] for k in (*smoothed, *raw, run)}
    for rid, rows in _runs(table, run, step):
        rows = rows[math.ceil(skip * rows.size):]
        if rows.size == 0:
            continue
        for k in smoothed:
            out[k].append(moving_average(sm[k][rows], smooth))
        for k in raw:
            out[k].append(rw[k][rows])
        out[run].append(np.full(rows.size, rid, dtype=object))
    return {k: np.concatenate(v) for k, v in out.items()}


def _check_chance(chance: float) -> float:
    if not (isinstance(chance, (int, float)) and math.isfinite(chance) and 0 <= chance < 1):
        raise DataError(f"chance accuracy must be a number in [0, 1), got {chance!r}")
    return float(chance)


def _accuracy_law(law: Any, role: str) -> Any:
    from scalelab.laws import make_law

    law = make_law(law)
    if not {"floor", "ceiling"} <= set(law.param_names):
        raise LawError(
            f"{role} needs a law with 'floor' and 'ceiling' parameters (sigmoid, gompertz, "
            f"gompertz_nd); {law.name} has {', '.join(law.param_names)}"
        )
    return law


# ----------------------------------------------------------------------------- two-step
def fit_two_step(
    data: Any,
    *,
    task_loss: str,
    accuracy: str,
    chance: float,
    N: str = "N",
    D: str = "D",
    run: str = "run",
    step: str = "step",
    where: str | None = None,
    window: int = 5,
    skip: float = 0.5,
    smooth: int = 5,
    top: float | None = None,
    step1_law: Any = "chinchilla",
    step1_loss: str = "huber",
    step2_law: Any = "sigmoid",
    step2_loss: str = "huber",
    bootstrap: int = 200,
    seed: int = 0,
    noise: bool = True,
    workers: int | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Chain:
    """Fit the two-step chain: ``(N, D) -> task loss -> accuracy``.

    Parameters
    ----------
    data : path, Table, DataFrame, mapping or list of these
        One row per (run, checkpoint) of the ladder runs only, with columns ``run``, ``step``,
        ``N`` (parameters), ``D`` (tokens seen), ``task_loss`` and ``accuracy``.
    task_loss, accuracy : str
        Columns of the task loss (bits per byte) and the accuracy.
    chance : float
        Chance accuracy; step 2's value at high task loss is fixed there.
    N, D, run, step : str
        Column names.
    where : str, optional
        Row filter (e.g. ``"kind == 'ladder'"``).
    window : int
        Step 1 fits each run's mean task loss over its last ``window`` checkpoints.
    skip, smooth : float, int
        Step 2 drops each run's first ``skip`` share of checkpoints and smooths task loss and
        accuracy with a trailing ``smooth``-checkpoint moving average.
    top : float, optional
        Fix step 2's accuracy at zero task loss (Bhagia et al. add the point (0, 1)); by
        default it is fitted in ``[chance, 1]``.
    step1_law, step2_law : str or Law
        Default ``chinchilla`` and ``sigmoid`` (in log task loss).
    step1_loss, step2_loss : str
        Fitting losses (default Huber on log residuals).
    bootstrap : int
        Resamples of each fit, by run (0: Hessian draws for the interval).
    seed : int
        Seed of the fits' bootstraps.
    noise : bool
        Carry each fit's RMS residual as observation noise in the chain's intervals.

    Returns
    -------
    Chain
        ``method="two-step"``, inputs ``N`` and ``D``; ``meta`` records the settings and runs.

    Raises
    ------
    DataError
        On missing columns, a filter matching no rows, or too few runs for the fits.
    """
    from scalelab.fit import fit

    chance = _check_chance(chance)
    law2 = _accuracy_law(step2_law, "step 2")
    if len(law2.inputs) != 1:
        raise LawError(f"step 2 must be a law of one input (the task loss); {law2.name} has "
                       f"{', '.join(law2.inputs)}")
    if not 0 <= skip < 1:
        raise DataError(f"skip must be a share of checkpoints in [0, 1), got {skip}")
    table = _read(data, where)
    finals = final_values(table, y=task_loss, run=run, step=step, window=window, keep=(N, D))
    run_ids = [str(r) for r in finals.column(run)]
    r1 = fit(
        step1_law,
        {"N": finals.numeric(N), "D": finals.numeric(D), task_loss: finals.numeric(task_loss)},
        x={"N": "N", "D": "D"},
        y=task_loss,
        loss=step1_loss,
        bootstrap=bootstrap,
        seed=seed,
        workers=workers,
    )
    later = _later_checkpoints(table, run=run, step=step, skip=skip, smooth=smooth,
                               smoothed=(task_loss, accuracy), raw=())
    fixed: dict[str, float] = {"ceiling": chance}
    bounds: dict[str, tuple[float, float]] = {}
    if top is None:
        bounds["floor"] = (chance, 1.0)
    else:
        fixed["floor"] = float(top)
    r2 = fit(
        law2,
        {task_loss: later[task_loss], accuracy: later[accuracy], run: later[run]},
        x={law2.inputs[0]: task_loss},
        y=accuracy,
        loss=step2_loss,
        fixed=fixed,
        bounds=bounds,
        bootstrap=bootstrap,
        bootstrap_by=run if bootstrap else None,
        seed=seed,
        workers=workers,
    )
    info = {
        **dict(meta or {}),
        "data": table.source,
        "where": where,
        "runs": run_ids,
        "window": window,
        "skip": skip,
        "smooth": smooth,
        "top": top,
        "columns": {"N": N, "D": D, "task_loss": task_loss, "accuracy": accuracy},
    }
    return Chain.two_step(r1, r2, chance=chance, target=accuracy, noise=noise, meta=info)


# ----------------------------------------------------------------------------- direct
def fit_direct(
    data: Any,
    *,
    accuracy: str,
    chance: float,
    N: str = "N",
    D: str = "D",
    run: str = "run",
    step: str = "step",
    where: str | None = None,
    law: Any = "gompertz",
    skip: float = 0.5,
    smooth: int = 5,
    loss: str = "huber",
    bootstrap: int = 200,
    seed: int = 0,
    noise: bool = True,
    workers: int | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Chain:
    """Fit accuracy directly against scale, floored at chance.

    A law of one input (``gompertz``, ``sigmoid``) is fitted against training compute
    ``C = 6 N D``; a law of ``N`` and ``D`` (``gompertz_nd``) against both. The points are
    every run's checkpoints after its first ``skip`` share (checkpoints with ``D <= 0``
    dropped), accuracy smoothed over ``smooth`` checkpoints; ``floor`` is fixed at ``chance``
    and ``ceiling`` fitted in ``[chance, 1]``.

    Parameters
    ----------
    data, accuracy, chance, N, D, run, step, where, skip, smooth, bootstrap, seed, noise
        As in :func:`fit_two_step`.
    law : str or Law
        ``gompertz`` (default), ``sigmoid`` or ``gompertz_nd``.
    loss : str
        Fitting loss (default Huber on log residuals; ``mse_linear`` when accuracies can be 0).

    Returns
    -------
    Chain
        ``method="direct"``, inputs ``N`` and ``D``.
    """
    from scalelab.fit import fit

    chance = _check_chance(chance)
    law_obj = _accuracy_law(law, "a direct accuracy fit")
    table = _read(data, where)
    table = table.filter(table.numeric(D) > 0)
    if len(table) == 0:
        raise DataError(f"no checkpoint with {D} > 0; the direct fit needs trained checkpoints")
    later = _later_checkpoints(table, run=run, step=step, skip=skip, smooth=smooth,
                               smoothed=(accuracy,), raw=(N, D))
    n_vals = np.asarray(later[N], dtype=float)
    d_vals = np.asarray(later[D], dtype=float)
    inputs = set(law_obj.inputs)
    if inputs == {"x"}:
        columns = {"compute": 6.0 * n_vals * d_vals}
        x_map, chain_inputs = {"x": "compute"}, {"x": "6 * N * D"}
    elif inputs == {"N", "D"}:
        columns = {"N": n_vals, "D": d_vals}
        x_map, chain_inputs = {"N": "N", "D": "D"}, {"N": "N", "D": "D"}
    else:
        raise LawError(
            f"a direct accuracy law takes compute (one input x) or N and D; {law_obj.name} "
            f"takes {', '.join(law_obj.inputs)}"
        )
    res = fit(
        law_obj,
        {**columns, accuracy: later[accuracy], run: later[run]},
        x=x_map,
        y=accuracy,
        loss=loss,
        fixed={"floor": chance},
        bounds={"ceiling": (chance, 1.0)},
        bootstrap=bootstrap,
        bootstrap_by=run if bootstrap else None,
        seed=seed,
        workers=workers,
    )
    info = {
        **dict(meta or {}),
        "data": table.source,
        "where": where,
        "runs": sorted({str(r) for r in later[run]}),
        "skip": skip,
        "smooth": smooth,
        "columns": {"N": N, "D": D, "accuracy": accuracy},
    }
    return Chain.direct(res, inputs=chain_inputs, chance=chance, target=accuracy, noise=noise,
                        meta=info)


# ----------------------------------------------------------------------------- scoring
@dataclass(frozen=True)
class TargetScore:
    """A held-out run: its final accuracy against the chain's prediction and interval."""

    run: str
    N: float
    D: float
    actual: float
    predicted: float
    lower: float
    upper: float

    @property
    def error(self) -> float:
        """``predicted - actual``."""
        return self.predicted - self.actual

    @property
    def inside(self) -> bool:
        return bool(self.lower <= self.actual <= self.upper)

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "N": self.N, "D": self.D, "actual": self.actual,
                "predicted": self.predicted, "lower": self.lower, "upper": self.upper,
                "inside": self.inside}


def score_targets(
    chain: Chain,
    data: Any,
    *,
    accuracy: str,
    N: str = "N",
    D: str = "D",
    run: str = "run",
    step: str = "step",
    where: str | None = None,
    window: int = 5,
    coverage: float = 0.95,
    noise: bool = True,
    intervals: bool = True,
    seed: int = 0,
) -> list[TargetScore]:
    """Predict the final accuracy of held-out runs and compare with what they reached.

    Each target's actual value is its mean over its last ``window`` checkpoints
    (:func:`final_values`); it is predicted at its ``N`` and final ``D``. With
    ``intervals=False`` only the best-fit chain is evaluated (``lower``/``upper`` are NaN), which
    needs no parameter uncertainty (fast, for comparing candidate methods).

    Raises
    ------
    DataError
        If ``where`` selects no rows (no target runs), or columns are missing.
    """
    finals = final_values(data, y=accuracy, run=run, step=step, window=window, keep=(N, D),
                          where=where)
    n_vals, d_vals = finals.numeric(N), finals.numeric(D)
    if intervals:
        pred = chain.predict(N=n_vals, D=d_vals, coverage=coverage, noise=noise, seed=seed)
        mean, lower, upper = pred.mean, pred.lower, pred.upper
    else:
        mean = chain.stage_values(N=n_vals, D=d_vals)[chain.stages[-1].output]
        lower = upper = np.full(mean.shape, np.nan)
    actual = finals.numeric(accuracy)
    return [
        TargetScore(str(r), float(n), float(d), float(a), float(m), float(lo), float(hi))
        for r, n, d, a, m, lo, hi in zip(finals.column(run), n_vals, d_vals, actual, mean,
                                         lower, upper, strict=True)
    ]


def mean_absolute_error(scores: Sequence[TargetScore]) -> float:
    """Mean ``|predicted - actual|`` over the scored targets."""
    if not scores:
        raise DataError("no scored targets to average")
    return float(np.mean([abs(s.error) for s in scores]))
