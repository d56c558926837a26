"""The demo's runs and the tables derived from their records.

:func:`describe_runs` reads each run's resolved config and status from the store (its size and
mixture labels, non-embedding parameter count, steps and the share of rows drawn from the
text source). :func:`dev_loss_columns` turns the exported records into the table the scaling
law is fitted to: one row per run and evaluation of the text source's held-out loss, with
``N`` the run's non-embedding parameters and ``D`` the text tokens it had trained on by then.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scalelab._io import atomic_write_text
from scalelab.errors import DataError
from scalelab.store.runs import RunStore
from scalelab.store.table import Table

__all__ = [
    "SKILL",
    "TEXT",
    "DemoRun",
    "accuracy_curves",
    "describe_runs",
    "dev_loss_columns",
    "write_csv",
]

#: the skill task and the text source of the demo grids (keys of ``data.sources``)
SKILL = "addition"
TEXT = "code"


@dataclass(frozen=True)
class DemoRun:
    """One run of the demo grid.

    Attributes
    ----------
    run_id : str
    size : str
        Rung of the size ladder (the grid's ``size`` label).
    mix : str
        The grid's ``mix`` label (``task-heavy`` or ``even``).
    n_params : float
        Non-embedding parameters: the ``N`` of the scaling law.
    steps : int
        Optimiser steps of the run.
    text_share : float
        Share of the batch rows drawn from the text source (its mixture weight over the total).
    final_accuracy : float or None
        Held-out accuracy of the skill at the last evaluation.
    """

    run_id: str
    size: str
    mix: str
    n_params: float
    steps: int
    text_share: float
    final_accuracy: float | None = None


def describe_runs(store: RunStore, run_ids: Sequence[str], table: Table) -> tuple[DemoRun, ...]:
    """The demo runs ``run_ids``, smallest first, from their configs and exported records.

    Raises
    ------
    DataError
        If a run is missing from the store or its config lacks the demo grid's labels.
    """
    infos = {info.run_id: info for info in store.runs()}
    n_params = _per_run(table, "n_params_nonembedding")
    final_acc = _final_accuracy(table)
    out = []
    for rid in run_ids:
        info = infos.get(rid)
        if info is None or not info.config:
            raise DataError(f"run {rid!r} is not in the store; rerun `scalelab demo` to train it")
        config = info.config
        labels = (config.get("grid") or {}).get("labels") or {}
        mixture = ((config.get("data") or {}).get("schedule") or {}).get("mixture") or {}
        if "size" not in labels or "mix" not in labels or TEXT not in mixture:
            raise DataError(
                f"run {rid!r} was not trained by the demo grid (no size/mix labels or no "
                f"{TEXT!r} source); use an empty -o DIR"
            )
        if rid not in n_params:
            raise DataError(f"run {rid!r} has no parameter count in its status; rerun the demo")
        total = float(sum(float(w) for w in mixture.values()))
        out.append(
            DemoRun(
                run_id=rid,
                size=str(labels["size"]),
                mix=str(labels["mix"]),
                n_params=n_params[rid],
                steps=int(config["steps"]),
                text_share=float(mixture[TEXT]) / total,
                final_accuracy=final_acc.get(rid),
            )
        )
    mixes = list(dict.fromkeys(r.mix for r in out))
    return tuple(sorted(out, key=lambda r: (r.n_params, mixes.index(r.mix))))


def _per_run(table: Table, column: str) -> dict[str, float]:
    if column not in table.columns:
        return {}
    runs = table.column("run")
    values = table.numeric(column)
    return {str(r): float(v) for r, v in zip(runs.tolist(), values.tolist(), strict=True) if np.isfinite(v)}


def _eval_mask(table: Table, source: str, metric: str) -> np.ndarray:
    return (
        (table.column("split") == "eval")
        & (table.column("source") == source)
        & (table.column("metric") == metric)
    )


def _final_accuracy(table: Table) -> dict[str, float]:
    sub = table.filter(_eval_mask(table, SKILL, "acc"))
    last: dict[str, tuple[float, float]] = {}
    for run, step, value in zip(
        sub.column("run").tolist(), sub.numeric("step").tolist(), sub.numeric("value").tolist(),
        strict=True,
    ):
        if run not in last or step >= last[run][0]:
            last[str(run)] = (step, value)
    return {run: value for run, (_, value) in last.items()}


def dev_loss_columns(
    table: Table, runs: Iterable[DemoRun], *, min_step: int
) -> dict[str, list[Any]]:
    """The fitted table: the text source's eval loss at every evaluation from ``min_step`` on.

    Columns: ``run``, ``size``, ``mix``, ``N`` (non-embedding parameters), ``step``,
    ``tokens`` (all positions trained on), ``D`` (text positions: ``tokens x text_share``) and
    ``loss``.

    Raises
    ------
    DataError
        If no evaluation of the text source is at or after ``min_step``.
    """
    by_id = {r.run_id: r for r in runs}
    sub = table.filter(_eval_mask(table, TEXT, "loss"))
    cols: dict[str, list[Any]] = {k: [] for k in ("run", "size", "mix", "N", "step", "tokens", "D", "loss")}
    for run, step, tokens, loss in zip(
        sub.column("run").tolist(),
        sub.numeric("step").tolist(),
        sub.numeric("tokens").tolist(),
        sub.numeric("value").tolist(),
        strict=True,
    ):
        r = by_id.get(str(run))
        if r is None or step < min_step:
            continue
        cols["run"].append(r.run_id)
        cols["size"].append(r.size)
        cols["mix"].append(r.mix)
        cols["N"].append(r.n_params)
        cols["step"].append(int(step))
        cols["tokens"].append(float(tokens))
        cols["D"].append(float(tokens) * r.text_share)
        cols["loss"].append(float(loss))
    if not cols["run"]:
        raise DataError(
            f"no evaluation of the {TEXT!r} loss at step {min_step} or later; the runs are "
            "unfinished: rerun `scalelab demo` to resume them"
        )
    return cols


def accuracy_curves(table: Table, runs: Iterable[DemoRun]) -> Any:
    """The skill's accuracy curves (a :class:`~scalelab.curves.CurveSet`) of ``runs``."""
    from scalelab.curves import read_curves

    ids = [r.run_id for r in runs]
    mask = _eval_mask(table, SKILL, "acc") & np.isin(table.column("run"), ids)
    return read_curves(
        table.filter(mask),
        metric="acc",
        run_col="run",
        skill_col="source",
        tokens_col="tokens",
    )


def write_csv(columns: Mapping[str, Sequence[Any]], path: Path) -> Path:
    """Write columns as CSV (floats with every digit, so the file reads back exactly)."""
    names = list(columns)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    for row in zip(*(columns[n] for n in names), strict=True):
        writer.writerow([repr(v) if isinstance(v, float) else v for v in row])
    atomic_write_text(path, buf.getvalue())
    return path
