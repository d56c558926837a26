"""Figures of learning curves: per-skill curves with transitions, loss curves, the emergence map.

Steps are drawn on a symmetric-log axis (linear below 1, logarithmic above), so step 0 and
the log-spaced checkpoints both show. Runs are coloured by size, smallest darkest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scalelab.curves import Curve, Transition
from scalelab.report._mpl import FigureFile, new_figure, save_figure
from scalelab.report.curve_data import CurveData, RunSize
from scalelab.report.transitions import sigmoid_values

__all__ = [
    "EmergenceRow",
    "draw_emergence_map",
    "draw_learning_curves",
    "emergence_map",
    "emergence_rows",
    "learning_curves",
    "loss_curves",
    "size_colours",
]

_PANEL_W, _PANEL_H = 3.4, 2.5
_MAX_COLS = 4


def size_colours(data: CurveData) -> dict[str, Any]:
    """Run -> colour: one colour per size, along viridis (the yellow end left out)."""
    from matplotlib import colormaps

    groups = data.size_groups()
    cmap = colormaps["viridis"]
    out = {}
    for k, (_, runs) in enumerate(groups):
        colour = cmap(0.85 * k / max(len(groups) - 1, 1))
        for run in runs:
            out[run] = colour
    return out


def _grid(n: int) -> tuple[int, int]:
    cols = min(_MAX_COLS, max(n, 1))
    return math.ceil(n / cols), cols


def _step_axis(ax: Any, last_step: float) -> None:
    """Symmetric-log step axis with ticks 0, 10, 100, 1k, ... (1 too on short runs)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ax.set_xscale("symlog", linthresh=1.0, linscale=0.4)
    top = max(math.ceil(math.log10(max(last_step, 1.0))), 1)
    ticks = [0.0] + [10.0**k for k in range(0 if top <= 2 else 1, top + 1)]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: _step_label(x)))
    ax.set_xlim(-0.3, max(last_step, 1.0) * 1.3)  # interval bars past the data are cut
    ax.grid(True, which="major", alpha=0.3)


def _step_label(x: float) -> str:
    if x == 0:
        return "0"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= scale:
            return f"{x / scale:g}{suffix}"
    return f"{x:g}"


def _size_legend(fig: Any, data: CurveData, colours: Mapping[str, Any], runs: Sequence[str]) -> None:
    from matplotlib.lines import Line2D

    handles, labels = [], []
    for size, group in data.size_groups():
        present = [r for r in group if r in runs]
        if not present:
            continue
        handles.append(Line2D([], [], color=colours[present[0]], lw=2))
        count = f" ({len(present)} runs)" if len(present) > 1 else ""
        labels.append(f"{size.label}{count}")
    # as many columns as fit the figure's width (a one-panel figure is narrow), at most 5
    longest = max((len(label) for label in labels), default=1)
    fit = max(1, int(fig.get_figwidth() / (0.45 + 0.075 * longest)))
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 5, fit),
               frameon=False, fontsize=9)


def learning_curves(
    data: CurveData,
    transitions: Sequence[Transition],
    folder: Path,
    *,
    stem: str = "learning_curves",
) -> FigureFile:
    """One panel per skill: every run's accuracy against step, with its detected transition.

    The transition (the fitted sigmoid's midpoint) is a diamond on the fitted sigmoid
    (dashed) with a horizontal bar for its interval; curves without an identified
    transition have neither.
    """
    curves = data.accuracy
    assert curves is not None
    fig = draw_learning_curves(data, transitions)
    identified = sum(1 for t in transitions if t.identified)
    caption = (
        f"{curves.metric} of {len(curves.runs)} run(s) on {len(curves.skills)} skill(s) from "
        f"{data.source}, coloured by size. Diamonds: detected transitions (midpoint of a "
        f"sigmoid fitted in log-step, dashed), bars: their {_coverage(transitions)} interval; "
        f"{identified} of {len(transitions)} curves have one (the others are listed with their "
        "status in the table below)."
    )
    return save_figure(fig, folder, stem, title="Learning curves per skill", caption=caption)


def draw_learning_curves(data: CurveData, transitions: Sequence[Transition]) -> Any:
    """The learning-curve panels as an unsaved matplotlib figure (one axes per skill)."""
    curves = data.accuracy
    assert curves is not None
    found = {(t.run, t.skill, t.seed): t for t in transitions}
    colours = size_colours(data)
    skills = curves.skills
    rows, cols = _grid(len(skills))
    fig = new_figure(_PANEL_W * cols, _PANEL_H * rows + 0.7)
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, skill in enumerate(skills):
        ax = axes[k // cols][k % cols]
        for curve in curves.select(skill=skill):
            colour = colours[curve.run]
            ax.plot(curve.step, curve.value, color=colour, lw=1.3, alpha=0.85, marker=".", ms=3)
            t = found.get((curve.run, curve.skill, curve.seed))
            if t is not None and t.identified:
                _draw_transition(ax, curve, t, colour)
        ax.set_title(skill or curves.metric, fontsize=10)
        _step_axis(ax, max(float(c.step[-1]) for c in curves.curves))
        if k % cols == 0:
            ax.set_ylabel(curves.metric)
        if k // cols == rows - 1 or k + cols >= len(skills):
            ax.set_xlabel("step")
    for k in range(len(skills), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    _size_legend(fig, data, colours, curves.runs)
    return fig


def _coverage(transitions: Sequence[Transition]) -> str:
    levels = {t.coverage for t in transitions}
    return f"{100 * levels.pop():g}%" if len(levels) == 1 else "bootstrap"


def _draw_transition(ax: Any, curve: Curve, t: Transition, colour: Any) -> None:
    assert t.step is not None and t.floor is not None and t.ceiling is not None
    last = float(curve.step[-1])
    grid = np.concatenate([np.linspace(0.0, 1.0, 8), np.geomspace(1.0, max(last, 1.0), 200)])
    grid = grid[grid >= curve.step[0]]
    ax.plot(grid, sigmoid_values(t, grid), color=colour, lw=0.9, ls="--", alpha=0.9)
    mid = 0.5 * (t.floor + t.ceiling)
    xerr = None
    if t.step_low is not None and t.step_high is not None:
        xerr = [[t.step - t.step_low], [t.step_high - t.step]]
    ax.errorbar([t.step], [mid], xerr=xerr, fmt="D", color=colour, mec="black", mew=0.6,
                ms=5, elinewidth=1.2, capsize=2, zorder=5)


def loss_curves(data: CurveData, folder: Path, *, stem: str = "loss_curves") -> FigureFile:
    """One panel per evaluation source: every run's loss against step (log loss axis)."""
    curves = data.loss
    assert curves is not None
    colours = size_colours(data)
    sources = curves.skills
    rows, cols = _grid(len(sources))
    fig = new_figure(_PANEL_W * cols, _PANEL_H * rows + 0.7)
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, source in enumerate(sources):
        ax = axes[k // cols][k % cols]
        for curve in curves.select(skill=source):
            ax.plot(curve.step, curve.value, color=colours[curve.run], lw=1.2, alpha=0.85)
        ax.set_title(source or curves.metric, fontsize=10)
        _step_axis(ax, max(float(c.step[-1]) for c in curves.curves))
        if k % cols == 0:
            ax.set_ylabel(f"eval {curves.metric}")
        if k // cols == rows - 1 or k + cols >= len(sources):
            ax.set_xlabel("step")
    for k in range(len(sources), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    _size_legend(fig, data, colours, curves.runs)
    caption = (
        f"Evaluation {curves.metric} per source of {len(curves.runs)} run(s) from "
        f"{data.source}, coloured by size."
    )
    return save_figure(fig, folder, stem, title="Evaluation loss per source", caption=caption)


# ------------------------------------------------------------------------------ emergence map
@dataclass(frozen=True)
class EmergenceRow:
    """One cell row of the emergence map: a skill in one size's panel.

    Attributes
    ----------
    size : RunSize
    runs : tuple of str
        The runs averaged (their common steps only).
    skill : str
    step : numpy.ndarray
        Steps shown.
    value : numpy.ndarray
        Mean accuracy of ``runs`` at each step.
    normalised : numpy.ndarray
        ``(value - low) / (high - low)`` with the skill's lowest and highest mean accuracy
        over every panel (0 everywhere when they are equal).
    markers : tuple of (str, float, float or None, float or None)
        ``(run, step, step_low, step_high)`` of each identified transition.
    """

    size: RunSize
    runs: tuple[str, ...]
    skill: str
    step: np.ndarray
    value: np.ndarray
    normalised: np.ndarray
    markers: tuple[tuple[str, float, float | None, float | None], ...]


def emergence_rows(data: CurveData, transitions: Sequence[Transition]) -> list[list[EmergenceRow]]:
    """The emergence map's content: per size (smallest first), one row per skill.

    Curves of the same size are averaged over the steps they all have; accuracy is then
    normalised per skill across all sizes, so colours compare between panels.
    """
    curves = data.accuracy
    assert curves is not None
    found = {(t.run, t.skill): t for t in transitions if t.identified}
    raw: list[list[tuple[RunSize, tuple[str, ...], str, np.ndarray, np.ndarray]]] = []
    for size, runs in data.size_groups():
        panel = []
        for skill in curves.skills:
            chosen = [c for c in curves.curves if c.skill == skill and c.run in runs]
            if not chosen:
                continue
            steps = chosen[0].step
            for c in chosen[1:]:
                steps = np.intersect1d(steps, c.step)
            values = np.mean([c.value[np.isin(c.step, steps)] for c in chosen], axis=0)
            panel.append((size, tuple(dict.fromkeys(c.run for c in chosen)), skill, steps, values))
        if panel:
            raw.append(panel)
    bounds: dict[str, tuple[float, float]] = {}
    for panel in raw:
        for _, _, skill, _, values in panel:
            if len(values) == 0:
                continue
            lo, hi = bounds.get(skill, (math.inf, -math.inf))
            bounds[skill] = (min(lo, float(values.min())), max(hi, float(values.max())))
    out = []
    for panel in raw:
        rows = []
        for size, members, skill, steps, values in panel:
            lo, hi = bounds.get(skill, (0.0, 0.0))
            norm = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
            marks = tuple(
                (run, float(t.step), t.step_low, t.step_high)
                for run in members
                if (t := found.get((run, skill))) is not None and t.step is not None
            )
            rows.append(EmergenceRow(size, members, skill, steps, values, norm, marks))
        out.append(rows)
    return out


def _edges(steps: np.ndarray) -> np.ndarray:
    """Cell edges around each step, half-way in log(step + 1)."""
    u = np.log(steps + 1.0)
    if len(u) == 1:
        return np.exp(np.array([u[0] - 0.5, u[0] + 0.5])) - 1.0
    mid = 0.5 * (u[1:] + u[:-1])
    first = u[0] - 0.5 * (u[1] - u[0])
    last = u[-1] + 0.5 * (u[-1] - u[-2])
    return np.exp(np.concatenate([[first], mid, [last]])) - 1.0


def emergence_map(
    data: CurveData,
    transitions: Sequence[Transition],
    folder: Path,
    *,
    stem: str = "emergence_map",
) -> tuple[FigureFile, list[list[EmergenceRow]]]:
    """Skill x step heat map, one panel per size; colour = accuracy normalised per skill.

    After Evanson, Lakretz & King (2023), "Language acquisition: do children and language
    models follow similar learning stages?", Findings of ACL: white diamonds mark each run's
    detected transition step on the skill's row (bars: its interval). Returns the saved
    figure and the rows drawn (see :func:`emergence_rows`).
    """
    fig, panels = draw_emergence_map(data, transitions)
    n_marks = sum(len(r.markers) for p in panels for r in p)
    caption = (
        f"When each skill emerges, per size ({data.source}). Colour: mean accuracy at each "
        "evaluated step, normalised per skill (0 = the skill's lowest value in any panel, 1 = "
        f"its highest). Diamonds: the {n_marks} detected transition steps (sigmoid midpoints), "
        "bars: their intervals. Layout after Evanson, Lakretz & King (2023)."
    )
    figure = save_figure(fig, folder, stem, title="Emergence map", caption=caption)
    return figure, panels


def draw_emergence_map(
    data: CurveData, transitions: Sequence[Transition]
) -> tuple[Any, list[list[EmergenceRow]]]:
    """The emergence map as an unsaved matplotlib figure, with the rows it draws."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    panels = emergence_rows(data, transitions)
    n_skills = max(len(p) for p in panels)
    cols = min(_MAX_COLS, len(panels))
    rows = math.ceil(len(panels) / cols)
    label_w = 0.08 * max(len(r.skill) for p in panels for r in p)
    fig = new_figure(3.0 * cols + label_w + 0.6, (0.32 * n_skills + 1.0) * rows + 1.0)
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    cmap, norm = colormaps["viridis"], Normalize(0.0, 1.0)
    mesh = None
    skills = [r.skill for r in max(panels, key=len)]
    metric = data.accuracy.metric if data.accuracy is not None else ""
    all_edges = np.concatenate([_edges(r.step) for p in panels for r in p])
    x_range = (float(all_edges.min()), float(all_edges.max()))
    for k, panel in enumerate(panels):
        ax = axes[k // cols][k % cols]
        for row in panel:
            y = skills.index(row.skill)
            mesh = ax.pcolormesh(_edges(row.step), [y - 0.5, y + 0.5], row.normalised[None, :],
                                 cmap=cmap, norm=norm, shading="flat")
            offsets = np.linspace(-0.22, 0.22, len(row.markers)) if len(row.markers) > 1 else [0.0]
            for (_, step, lo, hi), dy in zip(row.markers, offsets, strict=False):
                xerr = [[step - lo], [hi - step]] if lo is not None and hi is not None else None
                ax.errorbar([step], [y + dy], xerr=xerr, fmt="D", mfc="white", mec="black",
                            ecolor="white", ms=5, mew=0.8, elinewidth=1.0, capsize=0, zorder=5)
        _step_axis(ax, max(float(r.step[-1]) for p in panels for r in p))
        ax.set_xlim(*x_range)  # interval bars reaching past the evaluations are cut
        ax.grid(False)
        size = panel[0].size
        n_runs = len({run for r in panel for run in r.runs})
        ax.set_title(size.label + (f" (mean of {n_runs} runs)" if n_runs > 1 else ""), fontsize=9)
        ax.set_yticks(range(len(skills)), [s or metric for s in skills], fontsize=8)
        ax.set_ylim(len(skills) - 0.5, -0.5)
        if k // cols == rows - 1 or k + cols >= len(panels):
            ax.set_xlabel("step")
    for k in range(len(panels), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    if mesh is not None:
        fig.colorbar(mesh, ax=axes.ravel().tolist(), location="bottom", shrink=0.5, aspect=40,
                     label="accuracy, normalised per skill (0 = lowest, 1 = highest)")
    return fig, panels
