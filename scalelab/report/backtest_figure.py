"""Figure of a backtest: held-out runs' measured values against the predictions and intervals."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from scalelab.report._mpl import FigureFile, new_figure, save_figure
from scalelab.report.backtest import Backtest

__all__ = ["backtest_axis", "backtest_figure"]


def backtest_axis(bt: Backtest) -> tuple[np.ndarray, str]:
    """Where each held-out row sits on the x axis: ``6 N D`` for laws of N and D, else the
    first input."""
    if "N" in bt.x and "D" in bt.x:
        x = np.array([6.0 * r.inputs["N"] * r.inputs["D"] for r in bt.rows])
        return x, "training compute C = 6ND (FLOPs)"
    name = next(iter(bt.x))
    x = np.array([r.inputs[name] for r in bt.rows])
    return x, name if bt.x[name] == name else f"{name} ({bt.x[name]})"


def backtest_figure(bt: Backtest, folder: Path, stem: str) -> FigureFile | None:
    """Measured vs predicted for every held-out row (top) and the relative error (bottom);
    ``None`` when the backtest has no rows."""
    if not bt.rows:
        return None
    x, x_label = backtest_axis(bt)
    y = np.array([r.y for r in bt.rows])
    yhat = np.array([r.yhat for r in bt.rows])
    lower = np.array([r.lower for r in bt.rows])
    upper = np.array([r.upper for r in bt.rows])
    inside = np.array([r.inside for r in bt.rows])
    fig = new_figure(7.6, 5.6)
    ax, axr = fig.subplots(2, 1, sharex=True, height_ratios=[2.2, 1])
    has_interval = np.isfinite(lower) & np.isfinite(upper)
    for mask, colour, label in ((inside, "C0", "inside its interval"),
                                (~inside, "C3", "outside its interval")):
        if not mask.any():
            continue
        m = mask & has_interval
        ax.errorbar(x[m], yhat[m], yerr=[yhat[m] - lower[m], upper[m] - yhat[m]], fmt="o",
                    color=colour, ms=5, capsize=3, label=f"prediction, {label} ({int(mask.sum())})")
        m = mask & ~has_interval
        if m.any():
            ax.plot(x[m], yhat[m], "o", color=colour, ms=5)
        rel = 100 * (yhat / y - 1)
        rel_lo, rel_hi = 100 * (lower / y - 1), 100 * (upper / y - 1)
        m = mask & has_interval
        axr.errorbar(x[m], rel[m], yerr=[rel[m] - rel_lo[m], rel_hi[m] - rel[m]], fmt="o",
                     color=colour, ms=4, capsize=2)
        m = mask & ~has_interval
        if m.any():
            axr.plot(x[m], rel[m], "o", color=colour, ms=4)
    ax.scatter(x, y, marker="_", s=220, linewidths=2.2, color="black", zorder=5,
               label="measured")
    axr.axhline(0, color="black", lw=1)
    if np.all(x > 0):
        ax.set_xscale("log")
    ax.set_ylabel(bt.y)
    axr.set_ylabel("error % (pred / meas - 1)")
    axr.set_xlabel(x_label)
    for a in (ax, axr):
        a.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="best")
    m = bt.metrics
    caption = (
        f"Backtest of {bt.law} ({bt.source}): fitted on {bt.n_fit} runs, predicting "
        f"{bt.n_holdout} held-out runs ({bt.holdout}). Bars: the {100 * bt.coverage_level:g}% "
        f"prediction intervals; black ticks: measured values. Mean absolute relative error "
        f"{100 * m['are']:.3g}%, interval coverage {_pct(m['coverage'])} (nominal "
        f"{100 * bt.coverage_level:g}%)."
    )
    return save_figure(fig, folder, stem, title="Backtest", caption=caption)


def _pct(value: float) -> str:
    return f"{100 * value:.3g}%" if math.isfinite(value) else "-"
