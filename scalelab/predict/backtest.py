"""Backtests: hold out the largest runs, fit the rest, and score the predictions of the held out.

A scaling law earns trust by predicting runs it has not seen. :func:`run_backtest` fits a law on
the rows that do *not* match a holdout condition (``"params_N >= 2e9"``), predicts the rows
that do, with intervals for a new run (:func:`scalelab.predict.intervals.prediction_interval`),
and reports

* ``are`` -- absolute relative error, ``mean |y - yhat| / |y|``;
* ``mae`` -- mean absolute error, ``mean |y - yhat|``, and ``max_abs_error``;
* ``coverage`` -- the share of held-out rows inside their prediction interval.

The result saves to JSON with schema ``scalelab.backtest/1``::

    {"schema": "scalelab.backtest/1", "law": str, "x": {input: column}, "y": str,
     "holdout": str, "n_fit": int, "n_holdout": int, "coverage_level": float,
     "metrics": {"are", "mae", "max_abs_error", "coverage"},
     "rows": [{"inputs": {input: value}, "y", "yhat", "lower", "upper", "inside"}],
     "fit": <FitResult.to_dict() of the fit on the kept rows>}
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from scalelab.errors import DataError
from scalelab.predict.extrapolation import Extrapolation, check_extrapolation, fitted_ranges
from scalelab.predict.intervals import (
    NoiseModel,
    extrapolation_noise,
    prediction_interval,
    residual_noise,
)

if TYPE_CHECKING:
    from scalelab.fit import FitResult
    from scalelab.laws.base import Law

__all__ = ["SCHEMA", "Backtest", "BacktestRow", "run_backtest"]

SCHEMA = "scalelab.backtest/1"

#: noise models a backtest can use for its intervals
NOISE_METHODS = ("extrapolation", "residual")


@dataclass(frozen=True)
class BacktestRow:
    """One held-out row: its inputs, the observed and predicted value and the interval."""

    inputs: Mapping[str, float]
    y: float
    yhat: float
    lower: float
    upper: float
    inside: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": {k: float(v) for k, v in self.inputs.items()},
            "y": self.y,
            "yhat": self.yhat,
            "lower": _num(self.lower),
            "upper": _num(self.upper),
            "inside": self.inside,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BacktestRow:
        return cls(
            inputs={k: float(v) for k, v in d["inputs"].items()},
            y=float(d["y"]),
            yhat=float(d["yhat"]),
            lower=math.nan if d.get("lower") is None else float(d["lower"]),
            upper=math.nan if d.get("upper") is None else float(d["upper"]),
            inside=bool(d["inside"]),
        )


@dataclass(frozen=True)
class Backtest:
    """The outcome of :func:`run_backtest`; the fields mirror the JSON schema.

    ``noise`` and ``extrapolation`` describe how the intervals were built and how far the
    held-out rows lie beyond the fitted ones; they are printed by the CLI but not part of the
    schema (they are ``None`` on a backtest read back from JSON).
    """

    law: str
    x: Mapping[str, str]
    y: str
    holdout: str
    n_fit: int
    n_holdout: int
    coverage_level: float
    metrics: Mapping[str, float]
    rows: tuple[BacktestRow, ...]
    fit: FitResult = field(compare=False)  # the fit on the kept rows
    noise: NoiseModel | None = field(default=None, compare=False)
    extrapolation: Extrapolation | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", MappingProxyType(dict(self.x)))
        object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))
        object.__setattr__(self, "rows", tuple(self.rows))

    # ----------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        """The ``scalelab.backtest/1`` JSON object."""
        return {
            "schema": SCHEMA,
            "law": self.law,
            "x": dict(self.x),
            "y": self.y,
            "holdout": self.holdout,
            "n_fit": self.n_fit,
            "n_holdout": self.n_holdout,
            "coverage_level": self.coverage_level,
            "metrics": {k: _num(v) for k, v in self.metrics.items()},
            "rows": [r.to_dict() for r in self.rows],
            "fit": self.fit.to_dict(),
        }

    def save(self, path: str | Path) -> None:
        """Write the backtest as JSON (no NaN: missing values are null)."""
        from scalelab._io import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Backtest:
        """Rebuild a backtest from its JSON object (checks the schema)."""
        from scalelab.fit import FitResult

        if d.get("schema") != SCHEMA:
            raise DataError(
                f"not a scalelab backtest (schema {d.get('schema')!r}, expected {SCHEMA!r})"
            )
        try:
            return cls(
                law=str(d["law"]),
                x=dict(d["x"]),
                y=str(d["y"]),
                holdout=str(d["holdout"]),
                n_fit=int(d["n_fit"]),
                n_holdout=int(d["n_holdout"]),
                coverage_level=float(d["coverage_level"]),
                metrics={k: math.nan if v is None else float(v) for k, v in d["metrics"].items()},
                rows=tuple(BacktestRow.from_dict(r) for r in d["rows"]),
                fit=FitResult.from_dict(d["fit"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(f"malformed backtest JSON: {type(exc).__name__}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> Backtest:
        """Read a file written by :meth:`save` (or ``scalelab backtest --json``)."""
        p = Path(path)
        try:
            d = json.loads(p.read_text())
        except FileNotFoundError:
            raise DataError(
                f"backtest file {str(p)!r} not found; "
                f"write one with `scalelab backtest ... --json {p}`"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read backtest file {str(p)!r}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{str(p)!r} is not valid JSON (line {exc.lineno}): "
                "is it a `scalelab backtest --json` file?"
            ) from None
        if not isinstance(d, dict):
            raise DataError(f"{str(p)!r} is not a scalelab backtest file")
        return cls.from_dict(d)

    # ----------------------------------------------------------------- report
    def report(self, *, max_rows: int | None = None) -> str:
        """A plain-text summary: setup, metrics and the held-out rows."""
        m = self.metrics
        pct = f"{100 * self.coverage_level:g}%"
        lines = [
            f"backtest   {self.law} on {self.n_fit} rows, predicting {self.n_holdout} held out "
            f"({self.holdout})",
            f"ARE {100 * m['are']:.3f}%   MAE {m['mae']:.4g}   "
            f"max |err| {m['max_abs_error']:.4g}   "
            f"{pct} interval coverage {100 * m['coverage']:.1f}% "
            f"({sum(r.inside for r in self.rows)}/{len(self.rows)})",
        ]
        if self.noise is not None:
            lines.append(f"intervals  {self.interval_note()}")
        if self.extrapolation is not None and self.extrapolation.outside:
            lines.append(self.extrapolation.message())
        names = list(self.x)
        head = "  ".join(f"{n:>11}" for n in names) + (
            f"  {self.y:>9}  {'predicted':>9}  {'rel err':>8}  "
            f"{pct + ' low':>9}  {pct + ' high':>9}  in"
        )
        lines += ["", head, "-" * len(head)]
        shown = self.rows if max_rows is None else self.rows[:max_rows]
        for r in shown:
            rel = (r.yhat - r.y) / r.y if r.y else math.nan
            lines.append(
                "  ".join(f"{r.inputs[n]:>11.4g}" for n in names)
                + f"  {r.y:>9.4f}  {r.yhat:>9.4f}  {100 * rel:>7.2f}%  "
                + f"{r.lower:>9.4f}  {r.upper:>9.4f}  "
                + ("yes" if r.inside else "NO")
            )
        if len(shown) < len(self.rows):
            lines.append(f"... {len(self.rows) - len(shown)} more rows (all in --json)")
        return "\n".join(lines)

    def interval_note(self) -> str:
        """How the intervals were built (parameter draws and noise model)."""
        draws = "bootstrap refits" if self.fit.bootstrap is not None else "Hessian-normal draws"
        return f"{draws} + {self.noise.describe()}" if self.noise else draws


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def run_backtest(
    law: str | Law,
    data: Any,
    *,
    holdout: str,
    x: Mapping[str, str] | None = None,
    y: str = "loss",
    where: str | None = None,
    coverage: float = 0.95,
    noise: str = "extrapolation",
    folds: int = 4,
    order_by: str | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    **fit_options: Any,
) -> Backtest:
    """Fit ``law`` on the rows not matching ``holdout`` and score its predictions of the rest.

    Parameters
    ----------
    law : str or Law
        A registry name or a law instance.
    data : path, dataset name, Table or DataFrame
        One row per run.
    holdout : str
        A row condition (the ``--where`` grammar) selecting the rows to predict, e.g.
        ``"params_N >= 2e9"``; every other row (after ``where``) is fitted.
    x, y, where
        As in :func:`scalelab.fit`.
    coverage : float
        Level of the prediction intervals (default 0.95).
    noise : {"extrapolation", "residual"}
        Observation-noise model of the intervals: forward validation within the fitted rows
        (:func:`~scalelab.predict.intervals.extrapolation_noise`, refits ``folds - 1`` times)
        or the robust scale of the in-sample residuals
        (:func:`~scalelab.predict.intervals.residual_noise`).
    folds, order_by
        Settings of the extrapolation noise.
    seed : int
        Seed of the fit (starts, bootstrap) and of the interval simulation.
    progress : callable, optional
        Receives progress lines.
    **fit_options
        Any other option of :func:`scalelab.fit` (``loss``, ``delta``, ``bootstrap``,
        ``fixed``, ``weights``, ...).

    Returns
    -------
    Backtest

    Raises
    ------
    DataError
        If ``holdout`` matches no row, or leaves too few rows to fit.

    Examples
    --------
    >>> bt = run_backtest("chinchilla", "chinchilla", x={"N": "params_N", "D": "tokens_D"},
    ...                   y="loss", where="excluded_by_epoch == 0", holdout="params_N >= 2e9",
    ...                   bootstrap=1000)  # doctest: +SKIP
    >>> round(100 * bt.metrics["are"], 2)  # doctest: +SKIP
    0.85
    """
    from scalelab.fit import Parametrization, fit
    from scalelab.laws import make_law
    from scalelab.store import read_table

    law = make_law(law)
    if noise not in NOISE_METHODS:
        raise DataError(f"noise must be one of {', '.join(NOISE_METHODS)}, got {noise!r}")
    if not holdout or not holdout.strip():
        raise DataError(
            'a backtest needs --holdout EXPR naming the rows to predict, e.g. "params_N >= 2e9"'
        )
    if not 0 < coverage < 1:
        raise DataError(f"coverage must be between 0 and 1, got {coverage}")
    raw = read_table(data)
    table = raw.where(where) if where else raw
    mask = table.mask(holdout)
    n_hold = int(mask.sum())
    scope = f"the {len(table)} rows of {table.source}" + (f' where "{where}"' if where else "")
    if n_hold == 0:
        raise DataError(
            f'--holdout "{holdout}" matches none of {scope}: nothing to predict; '
            "choose a condition that selects the runs to predict"
        )
    n_fit = len(table) - n_hold
    if fit_options.get("params") is not None:
        param = Parametrization.from_lmfit(law, fit_options["params"])
    else:
        param = Parametrization(
            law,
            fixed=dict(fit_options.get("fixed") or {}),
            tied=dict(fit_options.get("tie") or {}),
            bounds=dict(fit_options.get("bounds") or {}),
        )
    need = param.n_free + 2
    if n_fit < need:
        raise DataError(
            f'--holdout "{holdout}" leaves {n_fit} of {scope} to fit {param.n_free} free '
            f"parameter(s) of {law.name}; a backtest needs at least {need}: hold out fewer rows"
        )
    kept_where = f"not ({holdout})" if not where else f"({where}) and not ({holdout})"
    say = progress or (lambda _msg: None)
    say(f"fitting {law.name} on {n_fit} rows; {n_hold} held out")
    res = fit(
        law,
        raw,
        x=x,
        y=y,
        where=kept_where,
        coverage=coverage,
        seed=seed,
        progress=progress,
        **fit_options,
    )
    if noise == "extrapolation":
        noise_model = extrapolation_noise(
            res, raw, folds=folds, order_by=order_by, progress=progress
        )
    else:
        noise_model = residual_noise(res, raw)

    held = table.filter(mask)
    X = {k: held.numeric(col) for k, col in res.inputs.items()}
    yv = held.numeric(y)
    kept = table.filter(~mask)
    fit_X = {k: kept.numeric(col) for k, col in res.inputs.items()}
    ranges, bound = fitted_ranges(res, fit_X)
    pred = prediction_interval(res, X, noise=noise_model, coverage=coverage, seed=seed)
    bad = np.flatnonzero(~np.isfinite(pred.mean))
    if bad.size:
        raise DataError(
            f"{bad.size} held-out row(s) (first: row {int(held.row_numbers[bad[0]])}) give no "
            f"finite {law.name} prediction; their inputs are outside the law's domain: "
            "filter them with --where"
        )
    err = np.abs(yv - pred.mean)
    inside = (yv >= pred.lower) & (yv <= pred.upper)
    nonzero = yv != 0
    metrics = {
        "are": float(np.mean(err[nonzero] / np.abs(yv[nonzero]))) if nonzero.any() else math.nan,
        "mae": float(np.mean(err)),
        "max_abs_error": float(np.max(err)),
        "coverage": float(np.mean(inside)),
    }
    rows = tuple(
        BacktestRow(
            inputs={k: float(X[k][i]) for k in res.inputs},
            y=float(yv[i]),
            yhat=float(pred.mean[i]),
            lower=float(pred.lower[i]),
            upper=float(pred.upper[i]),
            inside=bool(inside[i]),
        )
        for i in range(n_hold)
    )
    return Backtest(
        law=law.name,
        x=dict(res.inputs),
        y=y,
        holdout=holdout,
        n_fit=res.n_points,
        n_holdout=n_hold,
        coverage_level=float(coverage),
        metrics=metrics,
        rows=rows,
        fit=res,
        noise=noise_model,
        extrapolation=check_extrapolation(ranges, X, compute_is_bound=bound),
    )
