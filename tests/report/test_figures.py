"""What the figures draw: transition markers at the detected steps, the emergence map's cells,
the isoFLOP budgets, and the missing-matplotlib message."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scalelab.curves import Transition
from scalelab.errors import DataError
from scalelab.report.curve_data import CurveData, curves_from_store, curves_from_table
from scalelab.report.curve_figures import (
    draw_emergence_map,
    draw_learning_curves,
    emergence_rows,
)
from scalelab.report.fit_figures import compute_budgets
from scalelab.report.transitions import detect_transitions, sigmoid_values

Analysed = tuple[CurveData, tuple[Transition, ...]]


@pytest.fixture(scope="module")
def analysed(store_root: Path) -> Analysed:
    data = curves_from_store(str(store_root))
    assert data.accuracy is not None
    return data, detect_transitions(data.accuracy.curves, bootstrap=20, seed=0)


def _diamonds(ax: Any) -> list[tuple[float, float]]:
    out = []
    for line in ax.lines:
        if line.get_marker() == "D":
            out.extend(zip(np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float),
                           strict=True))
    return out


def test_learning_curve_diamonds_sit_at_the_detected_steps(analysed: Analysed) -> None:
    data, transitions = analysed
    fig = draw_learning_curves(data, transitions)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert set(panels) == {"copy", "parity<&>"}
    for skill, ax in panels.items():
        drawn = sorted(_diamonds(ax))
        expected = sorted(
            (t.step, 0.5 * (t.floor + t.ceiling))
            for t in transitions
            if t.skill == skill and t.identified
        )
        assert len(drawn) == len(expected)
        for (x, y), (ex, ey) in zip(drawn, expected, strict=True):
            assert x == pytest.approx(ex) and y == pytest.approx(ey)
    assert len(_diamonds(panels["copy"])) == 3 and not _diamonds(panels["parity<&>"])


def test_emergence_map_marks_each_detected_step_on_its_row(analysed: Analysed) -> None:
    data, transitions = analysed
    fig, panels = draw_emergence_map(data, transitions)
    assert [p[0].size.label for p in panels] == ["100k params", "400k params"]
    assert [p[0].runs for p in panels] == [("small-s0",), ("large-s0", "large-s1")]
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["100k params", "400k params (mean of 2 runs)"]
    for ax, panel in zip(axes, panels, strict=True):
        skills = [r.skill for r in panel]
        expected = sorted(
            t.step for t in transitions if t.identified and t.run in panel[0].runs
        )
        drawn = _diamonds(ax)
        assert sorted(x for x, _ in drawn) == pytest.approx(expected)
        for _, y in drawn:  # on the "copy" row (markers of several runs spread within it)
            assert abs(y - skills.index("copy")) < 0.5


def test_emergence_rows_average_runs_and_normalise_per_skill(analysed: Analysed) -> None:
    data, transitions = analysed
    panels = emergence_rows(data, transitions)
    copy = {p[0].size.label: next(r for r in p if r.skill == "copy") for p in panels}
    large = copy["400k params"]
    curves = [c for c in data.accuracy.curves if c.skill == "copy" and c.run in large.runs]
    np.testing.assert_allclose(large.value, np.mean([c.value for c in curves], axis=0))
    every = np.concatenate([r.value for r in copy.values()])
    lo, hi = every.min(), every.max()
    for row in copy.values():
        np.testing.assert_allclose(row.normalised, (row.value - lo) / (hi - lo))
    assert min(r.normalised.min() for r in copy.values()) == 0.0
    assert max(r.normalised.max() for r in copy.values()) == 1.0


def test_sigmoid_curve_passes_through_the_midpoint(analysed: Analysed) -> None:
    _, transitions = analysed
    t = next(t for t in transitions if t.identified)
    mid = sigmoid_values(t, np.array([t.step]))[0]
    assert mid == pytest.approx(0.5 * (t.floor + t.ceiling))
    flat = next(t for t in transitions if not t.identified)
    with pytest.raises(DataError, match="no fitted curve"):
        sigmoid_values(flat, np.array([1.0]))


def test_isoflop_budgets_cover_the_data_one_per_decade() -> None:
    budgets, edges = compute_budgets(1.4e18, 1.3e22)  # the range of Chinchilla's runs
    assert len(budgets) == 5
    assert edges[0] == pytest.approx(1.4e18) and edges[-1] == pytest.approx(1.3e22)
    assert np.all(np.diff(np.log10(budgets)) == pytest.approx(np.log10(1.3e22 / 1.4e18) / 5))
    assert len(compute_budgets(1e20, 1e20)[0]) == 3  # a single budget still gets a view


def test_pythia_curves_group_by_size(shared_data: Path) -> None:
    data = curves_from_table(
        shared_data / "pythia_v1_evals_by_checkpoint.csv", metric="acc", run_col="model",
        skill_col="task", where="num_fewshot == 0 and deduped == 0 and task == 'lambada_openai'",
        size_col="params_total",
    )
    groups = data.size_groups()
    assert [len(runs) for _, runs in groups] == [1] * 8
    sizes = [size.value for size, _ in groups]
    assert sizes == sorted(sizes) and groups[0][1] == ["pythia-70m"]
    assert groups[-1][0].label == "11.8B params"


def test_missing_matplotlib_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from scalelab.report._mpl import new_figure

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(DataError, match=r"pip install 'scalelab\[report\]'"):
        new_figure(2, 2)


def test_size_legend_fits_a_one_panel_figure() -> None:
    """Four sizes on one skill: the legend wraps into rows instead of running off the figure."""
    sizes = [21_720, 84_912, 340_000, 1_360_000]
    cols: dict[str, list[Any]] = {"run": [], "step": [], "acc": [], "n_params": []}
    for i, n in enumerate(sizes):
        for step in (0, 10, 100, 1000):
            cols["run"].append(f"run-{n}")
            cols["step"].append(step)
            cols["acc"].append(min(1.0, step / 1000 * (i + 1) / 4))
            cols["n_params"].append(n)
    data = curves_from_table({k: np.array(v) for k, v in cols.items()}, metric="acc",
                             size_col="n_params")
    fig = draw_learning_curves(data, ())
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.legends[0].get_window_extent(renderer)
    frame = fig.bbox
    assert box.x0 >= frame.x0 - 1 and box.x1 <= frame.x1 + 1, (box, frame)
    assert len(fig.legends[0].get_texts()) == 4
