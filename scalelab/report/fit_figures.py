"""Figures of a fitted law: against its data with residuals, extrapolated with prediction bands
out to a target, and (for laws of N and D) the isoFLOP view with the compute-optimal frontier.

Every band is :meth:`scalelab.fit.FitResult.predict`'s interval (bootstrap percentiles when
the fit was bootstrapped, the delta method otherwise): parameter uncertainty only, not the
scatter of single runs around the law.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scalelab.fit import Estimate, FitResult
from scalelab.report._mpl import FigureFile, new_figure, save_figure
from scalelab.report.fit_data import FitInput, Target

__all__ = [
    "FrontierPoint",
    "TargetPrediction",
    "compute_budgets",
    "extrapolation",
    "isoflop",
    "law_vs_data",
]

_FLOPS = 6.0
_BAND_ALPHA = 0.22


@dataclass(frozen=True)
class TargetPrediction:
    """The law's prediction at the extrapolation target.

    Attributes
    ----------
    inputs : mapping of str to float
        The law inputs at the target (compute-optimal N and D for a compute target).
    compute : float or None
        ``6 N D`` for N, D laws.
    mean, lower, upper : float
        Prediction and its interval (NaN when the fit has none).
    coverage : float
    method : str
        ``bootstrap-percentile`` or ``delta-method``.
    reach : float or None
        Target over the largest fitted value (of compute for N, D laws).
    """

    inputs: Mapping[str, float]
    compute: float | None
    mean: float
    lower: float
    upper: float
    coverage: float
    method: str
    reach: float | None


@dataclass(frozen=True)
class FrontierPoint:
    """Compute-optimal allocation at one budget: N, D, tokens per parameter and loss."""

    compute: float
    plan: Mapping[str, Estimate]


def _fmt(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else "-"


def _label(res: FitResult, name: str) -> str:
    column = res.inputs.get(name, name)
    return name if column == name else f"{name} ({column})"


def _fitted_values(res: FitResult, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.asarray(res.law.evaluate(res.theta, res.law.prepare_inputs(inputs)), dtype=float)


def _band(ax: Any, x: np.ndarray, pred: Any, colour: Any, label: str | None) -> None:
    if np.all(np.isfinite(pred.lower)) and np.all(np.isfinite(pred.upper)):
        ax.fill_between(x, pred.lower, pred.upper, color=colour, alpha=_BAND_ALPHA, lw=0,
                        label=label)


def _interval_words(res: FitResult, coverage: float) -> str:
    if res.bootstrap is not None and len(res.bootstrap):
        return f"{100 * coverage:g}% bootstrap interval ({len(res.bootstrap)} refits)"
    if res.covariance is not None:
        return f"{100 * coverage:g}% delta-method interval"
    return "no interval (the fit has neither bootstrap nor covariance)"


def _log_ok(values: np.ndarray) -> bool:
    return bool(np.all(values > 0))


def _plain_log_labels(*axes: Any) -> None:
    """On log axes spanning under two decades, label ticks 200, 300 instead of 2 x 10^2."""
    from matplotlib.ticker import LogFormatter

    for ax in axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() != "log":
                continue
            lo, hi = sorted(axis.get_view_interval())
            if lo > 0 and hi / lo < 100:
                axis.set_major_formatter(LogFormatter(labelOnlyBase=False))
                axis.set_minor_formatter(LogFormatter(labelOnlyBase=False))


# ----------------------------------------------------------------------------- law vs data
def law_vs_data(fit: FitInput, folder: Path, *, coverage: float) -> FigureFile | None:
    """The law against its data, with relative residuals; ``None`` for a multi-input law
    whose points are unknown (there is nothing to compare)."""
    res = fit.result
    names = tuple(res.law.inputs)
    if len(names) == 1:
        return _one_input(fit, folder, coverage)
    if fit.points is None:
        return None
    return _many_inputs(fit, folder)


def _one_input(fit: FitInput, folder: Path, coverage: float) -> FigureFile:
    res, pts = fit.result, fit.points
    name = res.law.inputs[0]
    if pts is not None:
        x_data = pts.inputs[name]
        lo, hi = float(np.min(x_data)), float(np.max(x_data))
    else:
        lo, hi = (float(v) for v in res.data["ranges"][name])
    log_x = lo > 0
    grid = np.geomspace(lo, hi, 300) if log_x else np.linspace(lo, hi, 300)
    pred = res.predict({name: grid}, coverage=coverage)
    fig = new_figure(6.4, 5.2 if pts is not None else 4.0)
    if pts is not None:
        ax, axr = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    else:
        ax, axr = fig.subplots(1, 1), None
    _band(ax, grid, pred, "C0", _interval_words(res, coverage))
    ax.plot(grid, pred.mean, color="C0", lw=1.6, label=f"{res.law.name} fit")
    if pts is not None and axr is not None:
        ax.scatter(pts.inputs[name], pts.y, s=14, color="black", zorder=3,
                   label=f"data ({len(pts.y)} points)")
        resid = 100 * (pts.y / _fitted_values(res, pts.inputs) - 1)
        axr.axhline(0, color="C0", lw=1)
        axr.scatter(pts.inputs[name], resid, s=12, color="black")
        axr.set_ylabel("residual %")
        axr.set_xlabel(_label(res, name))
        axr.grid(True, alpha=0.3)
    else:
        ax.set_xlabel(_label(res, name))
    if log_x:
        ax.set_xscale("log")
    if res.law.positive and _log_ok(pred.mean) and (pts is None or _log_ok(pts.y)):
        ax.set_yscale("log")
    ax.set_ylabel(res.y)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="best")
    _plain_log_labels(ax, *([axr] if axr is not None else []))
    caption = (
        f"{res.law.name} fitted to {res.n_points} points of {res.data.get('source', '?')}: "
        f"the law (line) with its {_interval_words(res, coverage)}"
        + (", and the relative residuals (measured / fitted - 1)." if pts else
           "; the points are not available (see notes).")
    )
    return save_figure(fig, folder, f"{fit.key}_law_vs_data", title="Law against data",
                       caption=caption)


def _many_inputs(fit: FitInput, folder: Path) -> FigureFile:
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm, Normalize

    res, pts = fit.result, fit.points
    assert pts is not None
    names = tuple(res.law.inputs)
    fitted = _fitted_values(res, pts.inputs)
    resid = 100 * (pts.y / fitted - 1)
    fig = new_figure(3.6 * (1 + len(names)) + 0.8, 3.8)
    axes = fig.subplots(1, 1 + len(names))
    colour_by = pts.inputs[names[0]]
    norm = LogNorm() if _log_ok(colour_by) else Normalize()
    cmap = colormaps["viridis"]
    ax = axes[0]
    sc = ax.scatter(fitted, pts.y, c=colour_by, cmap=cmap, norm=norm, s=12)
    both = np.concatenate([fitted, pts.y])
    line = [float(both.min()), float(both.max())]
    ax.plot(line, line, color="black", lw=1, label="measured = fitted")
    ax.set_xlabel(f"fitted {res.y}")
    ax.set_ylabel(f"measured {res.y}")
    ax.set_title("measured against fitted", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(True, alpha=0.3)
    for ax, name in zip(axes[1:], names, strict=True):
        values = pts.inputs[name]
        ax.scatter(values, resid, c=colour_by, cmap=cmap, norm=norm, s=12)
        ax.axhline(0, color="black", lw=1)
        if _log_ok(values):
            ax.set_xscale("log")
        ax.set_xlabel(_label(res, name))
        ax.set_ylabel("residual % (measured / fitted - 1)")
        ax.set_title(f"residuals against {name}", fontsize=10)
        ax.grid(True, alpha=0.3)
        _plain_log_labels(ax)
    fig.colorbar(sc, ax=list(axes), label=_label(res, names[0]), pad=0.01)
    stats = res.stats
    caption = (
        f"{res.law.name} fitted to {res.n_points} points of {res.data.get('source', '?')}"
        + (f" where {res.options['where']}" if res.options.get("where") else "")
        + f": measured against fitted values and relative residuals against each input "
        f"(colour: {names[0]}). RMSE {stats.get('rmse', math.nan):.3g}, MAPE "
        f"{100 * stats.get('mape', math.nan):.3g}%."
    )
    return save_figure(fig, folder, f"{fit.key}_law_vs_data", title="Law against data",
                       caption=caption)


# ----------------------------------------------------------------------------- extrapolation
def _repeat(theta: np.ndarray, n: int) -> np.ndarray:
    return np.repeat(theta[None], n, axis=0)


def _optimal_path(res: FitResult, compute: np.ndarray) -> dict[str, np.ndarray]:
    """Point-estimate compute-optimal N and D at each budget (vectorised over budgets)."""
    best = res.law.compute_optimal(_repeat(res.theta, len(compute)), compute)
    return {"N": np.asarray(best["N"], dtype=float), "D": np.asarray(best["D"], dtype=float)}


def _data_range(fit: FitInput, name: str) -> tuple[float, float]:
    if fit.points is not None:
        v = fit.points.inputs[name]
        return float(np.min(v)), float(np.max(v))
    lo, hi = fit.result.data["ranges"][name]
    return float(lo), float(hi)


def _compute_range(fit: FitInput) -> tuple[float, float]:
    if fit.points is not None and fit.points.compute is not None:
        c = fit.points.compute
        return float(np.min(c)), float(np.max(c))
    n_lo, n_hi = _data_range(fit, "N")
    d_lo, d_hi = _data_range(fit, "D")
    return _FLOPS * n_lo * d_lo, _FLOPS * n_hi * d_hi


def extrapolation(
    fit: FitInput, target: Target, folder: Path, *, coverage: float
) -> tuple[FigureFile, TargetPrediction]:
    """The law from its data out to ``target``, with the prediction band and the target's
    interval. One-input laws run along their input; N, D laws along compute ``C = 6 N D``:
    on the compute-optimal frontier for a compute target, at the target's ``D/N`` otherwise
    (other inputs held at the target)."""
    res = fit.result
    names = tuple(res.law.inputs)
    if len(names) == 1:
        name = names[0]
        lo, hi = _data_range(fit, name)
        assert target.inputs is not None
        x_t = float(target.inputs[name])
        grid = np.geomspace(min(lo, x_t), max(hi, x_t), 300)
        X: dict[str, np.ndarray] = {name: grid}
        x_axis, x_label, x_target = grid, _label(res, name), x_t
        x_points = None if fit.points is None else fit.points.inputs[name]
        reach, path = x_t / hi, f"along {name}"
        at = {name: x_t}
    else:
        lo, hi = _compute_range(fit)
        if target.inputs is None:
            assert target.compute is not None
            c_t = target.compute
            grid = np.geomspace(min(lo, c_t), max(hi, c_t), 200)
            X = _optimal_path(res, grid)
            best = _optimal_path(res, np.array([c_t]))
            at = {"N": float(best["N"][0]), "D": float(best["D"][0])}
            path = "along the compute-optimal frontier N*(C), D*(C)"
        else:
            at = dict(target.inputs)
            c_t = _FLOPS * at["N"] * at["D"]
            ratio = at["D"] / at["N"]
            grid = np.geomspace(min(lo, c_t), max(hi, c_t), 200)
            n = np.sqrt(grid / (_FLOPS * ratio))
            X = {"N": n, "D": ratio * n}
            X.update({k: np.full_like(grid, v) for k, v in at.items() if k not in ("N", "D")})
            path = f"at the target's D/N = {ratio:.3g} tokens per parameter"
        x_axis, x_label, x_target = grid, "training compute C = 6ND (FLOPs)", c_t
        x_points = None if fit.points is None else fit.points.compute
        reach = c_t / hi
    pred = res.predict(X, coverage=coverage)
    at_pred = res.predict({k: [v] for k, v in at.items()}, coverage=coverage)
    result = TargetPrediction(
        inputs=at,
        compute=None if len(names) == 1 else x_target,
        mean=float(at_pred.mean[0]),
        lower=float(at_pred.lower[0]),
        upper=float(at_pred.upper[0]),
        coverage=at_pred.coverage,
        method=at_pred.method,
        reach=reach,
    )
    fig = new_figure(7.6, 4.8)
    ax = fig.subplots(1, 1)
    ax.axvspan(lo, hi, color="0.5", alpha=0.1, lw=0, label="fitted range")
    _band(ax, x_axis, pred, "C0", _interval_words(res, coverage))
    ax.plot(x_axis, pred.mean, color="C0", lw=1.6, label=f"{res.law.name} {path}")
    if x_points is not None and fit.points is not None:
        ax.scatter(x_points, fit.points.y, s=9, color="0.35", alpha=0.7, zorder=3,
                   label=f"data ({len(fit.points.y)} points)")
    yerr = None
    if math.isfinite(result.lower) and math.isfinite(result.upper):
        yerr = [[result.mean - result.lower], [result.upper - result.mean]]
    ax.errorbar([x_target], [result.mean], yerr=yerr, fmt="*", ms=11, color="C3", mec="black",
                mew=0.6, capsize=4, zorder=5, label="target")
    text = f"{res.y} = {result.mean:.4g}"
    if yerr is not None:
        text += f"\n[{result.lower:.4g}, {result.upper:.4g}]"
    ax.annotate(text, (x_target, result.mean), xytext=(-12, 14), textcoords="offset points",
                ha="right", fontsize=9,
                bbox={"boxstyle": "round", "fc": "white", "ec": "0.7", "alpha": 0.9})
    ax.set_xscale("log")
    if res.law.positive and _log_ok(pred.mean) and pred.mean.max() > 10 * pred.mean.min():
        ax.set_yscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel(res.y)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="upper right")
    _plain_log_labels(ax)
    where_to = ", ".join(f"{k} = {v:.3g}" for k, v in at.items())
    caption = (
        f"Extrapolation of {res.law.name} {path} to the target ({where_to}"
        + (f"; C = {x_target:.3g} FLOPs" if len(names) > 1 else "")
        + f"), {reach:.3g}x the largest fitted value{' of compute' if len(names) > 1 else ''}"
        + (" (default target)" if target.default else "")
        + f". Band: {_interval_words(res, coverage)}, parameter uncertainty only."
    )
    figure = save_figure(fig, folder, f"{fit.key}_extrapolation", title="Extrapolation",
                         caption=caption)
    return figure, result


# ----------------------------------------------------------------------------- isoFLOP view
def compute_budgets(lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Budgets of the isoFLOP view: about one per decade of ``[lo, hi]`` (3 to 6), at the
    centres (in log) of equal bins; returns ``(budgets, bin edges)``."""
    a, b = math.log10(lo), math.log10(hi)
    k = int(min(6, max(3, round(b - a) + 1)))
    if b - a < 1e-9:
        a, b = a - 0.5, b + 0.5
    edges = np.linspace(a, b, k + 1)
    return 10 ** (0.5 * (edges[1:] + edges[:-1])), 10**edges


def isoflop(
    fit: FitInput, target: Target | None, folder: Path, *, coverage: float
) -> tuple[FigureFile, list[FrontierPoint]]:
    """Loss against N at fixed budgets (C = 6 N D) from the fitted law, the data grouped by
    compute, and the compute-optimal frontier N*(C), D*(C) with intervals."""
    from matplotlib import colormaps

    res, pts = fit.result, fit.points
    lo, hi = _compute_range(fit)
    budgets, edges = compute_budgets(lo, hi)
    cmap = colormaps["plasma"]
    colours = [cmap(0.85 * k / max(len(budgets) - 1, 1)) for k in range(len(budgets))]
    fig = new_figure(12.0, 4.8)
    ax, axf = fig.subplots(1, 2, width_ratios=[1.25, 1])
    frontier: list[FrontierPoint] = []
    y_seen: list[float] = []
    groups = None
    if pts is not None and pts.compute is not None:
        groups = np.clip(np.searchsorted(edges, pts.compute, side="right") - 1, 0, len(budgets) - 1)
    for k, c in enumerate(budgets):
        plan = res.compute_optimal(float(c), coverage=coverage)
        frontier.append(FrontierPoint(float(c), plan))
        n_opt = plan["N"].value
        n = np.geomspace(n_opt / 50, n_opt * 50, 160)
        pred = res.predict(N=n, D=c / (_FLOPS * n), coverage=coverage)
        label = f"C = {c:.2g}"
        if groups is not None and pts is not None:
            mine = groups == k
            label += f" ({int(mine.sum())} points, {edges[k]:.2g}-{edges[k + 1]:.2g})"
            ax.scatter(pts.inputs["N"][mine], pts.y[mine], s=10, color=colours[k], alpha=0.75,
                       edgecolor="none")
            y_seen.extend(pts.y[mine].tolist())
        _band(ax, n, pred, colours[k], None)
        ax.plot(n, pred.mean, color=colours[k], lw=1.5, label=label)
        ax.plot([n_opt], [plan["loss"].value], marker="o", color=colours[k], mec="black", ms=6,
                zorder=5)
        y_seen.append(plan["loss"].value)
    dense = np.geomspace(budgets[0], budgets[-1], 60)
    path = _optimal_path(res, dense)
    loss_path = _fitted_values(res, path)
    ax.plot(path["N"], loss_path, color="black", ls="--", lw=1, label="compute-optimal N*(C)")
    ax.set_xscale("log")
    low, high = min(y_seen), max(y_seen)
    pad = 0.08 * (high - low if high > low else abs(high) or 1.0)
    ax.set_ylim(low - pad, high + 2 * pad)
    ax.set_xlabel(_label(res, "N"))
    ax.set_ylabel(res.y)
    ax.set_title("isoFLOP curves from the fitted law", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="lower left")
    _frontier_panel(axf, fit, budgets, target, coverage, frontier, groups)
    c_t = None if target is None else target.compute
    caption = (
        f"Left: {res.y} against N at {len(budgets)} fixed budgets C = 6ND from {res.law.name} "
        "(lines, with bands), the minimum of each (circle) and the compute-optimal frontier "
        "(dashed)"
        + ("; points: the data, grouped into the compute bins named in the legend" if groups is not None else "")
        + ". Right: compute-optimal N*(C) and D*(C) with their "
        + _interval_words(res, coverage)
        + ("; open markers: the lowest-loss run of each compute bin" if groups is not None else "")
        + (f"; dotted line: the target budget {c_t:.3g} FLOPs" if c_t else "")
        + "."
    )
    figure = save_figure(fig, folder, f"{fit.key}_isoflop", title="isoFLOP view and compute-optimal frontier",
                         caption=caption)
    return figure, frontier


def _frontier_panel(
    ax: Any,
    fit: FitInput,
    budgets: np.ndarray,
    target: Target | None,
    coverage: float,
    frontier: list[FrontierPoint],
    groups: np.ndarray | None,
) -> None:
    res, pts = fit.result, fit.points
    c_hi = float(budgets[-1])
    if target is not None and target.compute is not None:
        c_hi = max(c_hi, target.compute)
        frontier.append(FrontierPoint(target.compute, res.compute_optimal(target.compute, coverage=coverage)))
    grid = np.geomspace(float(budgets[0]), c_hi, 40)
    plans = [res.compute_optimal(float(c), coverage=coverage) for c in grid]
    for key, colour, name in (("N", "C0", "N* (parameters)"), ("D", "C1", "D* (tokens)")):
        mean = np.array([p[key].value for p in plans])
        low = np.array([p[key].ci_low for p in plans])
        high = np.array([p[key].ci_high for p in plans])
        if np.all(np.isfinite(low)) and np.all(np.isfinite(high)):
            ax.fill_between(grid, low, high, color=colour, alpha=_BAND_ALPHA, lw=0)
        ax.plot(grid, mean, color=colour, lw=1.6, label=name)
    if groups is not None and pts is not None and pts.compute is not None:
        for k in range(len(budgets)):
            mine = np.flatnonzero(groups == k)
            if mine.size == 0:
                continue
            best = mine[np.argmin(pts.y[mine])]
            ax.scatter([pts.compute[best]], [pts.inputs["N"][best]], marker="o", facecolor="none",
                       edgecolor="C0", s=36, zorder=4)
            ax.scatter([pts.compute[best]], [pts.inputs["D"][best]], marker="s", facecolor="none",
                       edgecolor="C1", s=36, zorder=4)
    if target is not None and target.compute is not None:
        ax.axvline(target.compute, color="0.3", ls=":", lw=1.2, label="target budget")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute C = 6ND (FLOPs)")
    ax.set_ylabel("compute-optimal N*, D*")
    ax.set_title("compute-optimal frontier", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="upper left")
