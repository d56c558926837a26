"""A fit as tables and a figure: parameters, the fitted and extrapolated curve, the data points.

Plain data (lists of rows) so W&B tables, reports and tests can all use it; the figure needs
matplotlib (``pip install 'scalelab[plot]'``) and is skipped without it.

The curve follows every input of the law together along a geometric path from its smallest
observed value to ``extrapolate`` times its largest (64 points; for one input, simply the x
axis), with the prediction interval at the fit's coverage; points past the observed range are
flagged ``extrapolated``. The data points are re-read from the fit's source with its ``where``
filter, and used only if the table's fingerprint still matches the one the fit recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FitMedia", "fit_media", "plot_fit"]

_PARAM_COLUMNS = ("name", "value", "stderr", "ci_low", "ci_high", "fixed", "at_bound")


@dataclass(frozen=True)
class FitMedia:
    """Tables of a fit as (columns, rows); ``points`` is None when the data could not be re-read."""

    params: tuple[tuple[str, ...], list[list[Any]]]
    curve: tuple[tuple[str, ...], list[list[Any]]]
    points: tuple[tuple[str, ...], list[list[Any]]] | None
    note: str = ""


def _clean(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _points(res: Any, base: Path | None) -> tuple[dict[str, np.ndarray], np.ndarray] | str:
    """The fit's data (inputs, y), or why it is not available."""
    from scalelab.errors import ScalelabError
    from scalelab.store import read_table

    source = res.data.get("source")
    if not isinstance(source, str):
        return "the fit's data source is not a file"
    candidates = [source] + ([str(base / source)] if base is not None and not Path(source).is_absolute() else [])
    for cand in candidates:
        try:
            table = read_table(cand)
            where = res.options.get("where")
            if where:
                table = table.where(where)
        except ScalelabError:
            continue
        if table.fingerprint() != res.data.get("fingerprint"):
            return f"{source} has changed since the fit (fingerprint differs); data points left out"
        X = {k: table.numeric(col) for k, col in res.inputs.items()}
        return X, table.numeric(res.y)
    return f"{source} cannot be read from here; data points left out"


def fit_media(res: Any, *, base: Path | None = None, extrapolate: float = 10.0, n: int = 64) -> FitMedia:
    """Tables of ``res`` (a :class:`~scalelab.fit.result.FitResult`).

    Parameters
    ----------
    res : FitResult
    base : Path, optional
        Folder to resolve a relative data source against (the fit file's folder), after the
        current directory.
    extrapolate : float
        The curve runs to this multiple of the largest observed input.
    n : int
        Points on the curve.
    """
    params = [[name, e.value, _clean(e.stderr), _clean(e.ci_low), _clean(e.ci_high), e.fixed, e.at_bound]
              for name, e in res.params.items()]
    names = list(res.law.inputs)
    ranges = res.data.get("ranges", {})
    t = np.linspace(0.0, 1.0, n)
    grid = {}
    for k in names:
        lo, hi = (float(v) for v in ranges[k])
        lo = max(lo, hi * 1e-6) if lo <= 0 else lo
        grid[k] = lo * (hi * extrapolate / lo) ** t
    pred = res.predict(grid, coverage=res.coverage)
    first_hi = float(ranges[names[0]][1])
    curve_rows = [[*(float(grid[k][i]) for k in names), float(pred.mean[i]), _clean(pred.lower[i]),
                   _clean(pred.upper[i]), bool(grid[names[0]][i] > first_hi * (1 + 1e-12))]
                  for i in range(n)]
    curve_cols = (*names, f"{res.y} (fit)", "lower", "upper", "extrapolated")
    got = _points(res, base)
    points = None
    note = ""
    if isinstance(got, str):
        note = got
    else:
        X, y = got
        fitted = res.predict(X).mean
        rows = [[*(float(X[k][i]) for k in names), float(y[i]), float(fitted[i])] for i in range(len(y))]
        points = ((*names, res.y, f"{res.y} (fit)"), rows)
    return FitMedia((_PARAM_COLUMNS, params), (curve_cols, curve_rows), points, note)


def plot_fit(res: Any, media: FitMedia, path: str | Path) -> Path | None:
    """Draw the curve, its interval and the data against the law's first input (log-log) into a
    PNG at ``path``; return the path, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = media.curve[1]
    x = np.array([r[0] for r in rows], dtype=float)
    mean = np.array([r[len(res.law.inputs)] for r in rows], dtype=float)
    lower = np.array([np.nan if r[-3] is None else r[-3] for r in rows], dtype=float)
    upper = np.array([np.nan if r[-2] is None else r[-2] for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    try:
        if media.points is not None:
            prow = media.points[1]
            ax.scatter([r[0] for r in prow], [r[len(res.law.inputs)] for r in prow], s=10, alpha=0.6,
                       color="0.3", label="data")
        ax.plot(x, mean, color="C0", label=f"{res.law.name} fit")
        ax.fill_between(x, lower, upper, color="C0", alpha=0.2, label=f"{res.coverage:.0%} interval")
        ax.axvline(float(res.data["ranges"][res.law.inputs[0]][1]), color="0.5", ls=":", lw=1,
                   label="extrapolation starts")
        ax.set_xscale("log")
        ax.set_yscale("log" if np.all(mean > 0) else "linear")
        path_inputs = "" if len(res.law.inputs) == 1 else f" (inputs {', '.join(res.law.inputs)} scaled together)"
        ax.set_xlabel(f"{res.law.inputs[0]} = {res.inputs[res.law.inputs[0]]}{path_inputs}")
        ax.set_ylabel(res.y)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return Path(path)

