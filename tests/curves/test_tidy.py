"""Reading tidy tables into curves: layouts, sorting, duplicates and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scalelab.curves import emergence, fit_transition, read_curves
from scalelab.errors import DataError

PYTHIA = "pythia_v1_evals_by_checkpoint.csv"


def long_table() -> dict[str, list]:
    return {
        "model": ["a"] * 6 + ["b"] * 3,
        "task": ["x", "x", "x", "y", "y", "y", "x", "x", "x"],
        "metric": ["acc"] * 9,
        "step": [0, 10, 100, 0, 10, 100, 0, 10, 100],
        "value": [0.1, 0.5, 0.9, 0.2, 0.3, 0.4, 0.1, 0.2, 0.3],
        "tokens": [0, 20, 200, 0, 20, 200, 0, 30, 300],
    }


def test_long_layout_groups_runs_and_skills_in_order_of_appearance() -> None:
    cs = read_curves(
        long_table(), metric="acc", run_col="model", skill_col="task", tokens_col="tokens"
    )
    assert [(c.run, c.skill) for c in cs] == [("a", "x"), ("a", "y"), ("b", "x")]
    a_x = cs.select(run="a", skill="x")[0]
    assert a_x.step.tolist() == [0, 10, 100] and a_x.value.tolist() == [0.1, 0.5, 0.9]
    assert a_x.tokens is not None and a_x.tokens.tolist() == [0, 20, 200]
    assert cs.runs == ("a", "b") and cs.skills == ("x", "y") and cs.notes == ()
    assert not a_x.step.flags.writeable


def test_wide_layout_reads_the_metric_column() -> None:
    data = {"run": ["r", "r", "r"], "step": [1, 2, 3], "loss": [3.0, 2.5, 2.2]}
    (curve,) = read_curves(data, metric="loss")
    assert curve.metric == "loss" and curve.value.tolist() == [3.0, 2.5, 2.2] and curve.skill == ""


def test_other_metrics_are_ignored_in_a_long_table() -> None:
    data = long_table()
    data["metric"][1] = "acc_norm"
    data["value"][1] = "n/a"  # text in a row of another metric does not matter
    cs = read_curves(data, metric="acc", run_col="model", skill_col="task")
    assert cs.select(run="a", skill="x")[0].step.tolist() == [0, 100]


def test_unsorted_steps_are_sorted_with_a_note() -> None:
    data = {
        "run": ["r"] * 4,
        "step": [100, 0, 1000, 10],
        "value": [0.5, 0.1, 0.9, 0.2],
        "metric": ["acc"] * 4,
    }
    cs = read_curves(data, metric="acc")
    (curve,) = cs
    assert curve.step.tolist() == [0, 10, 100, 1000]
    assert curve.value.tolist() == [0.1, 0.2, 0.5, 0.9]
    assert any("sorted" in n for n in curve.notes) and any("sorted" in n for n in cs.notes)


def test_identical_duplicate_rows_are_dropped_with_a_note() -> None:
    data = {"run": ["r"] * 4, "step": [0, 10, 10, 100], "value": [0.1, 0.5, 0.5, 0.9]}
    cs = read_curves(data, metric="value")
    (curve,) = cs
    assert curve.step.tolist() == [0, 10, 100] and curve.value.tolist() == [0.1, 0.5, 0.9]
    assert any("identical" in n for n in curve.notes)
    assert cs.notes == ("dropped 1 row(s) repeating an identical (run, skill, step) row",)


def test_conflicting_duplicates_name_the_column_that_tells_them_apart() -> None:
    data = {
        "run": ["r"] * 4,
        "shots": [0, 0, 5, 0],
        "step": [0, 10, 10, 100],
        "value": [0.1, 0.5, 0.6, 0.9],
    }
    with pytest.raises(
        DataError, match=r"two rows at step 10 with different values .*rows 1 and 2.*shots"
    ):
        read_curves(data, metric="value")


def test_conflicting_duplicates_in_the_real_pythia_file_point_at_num_fewshot(
    shared_data: Path,
) -> None:
    with pytest.raises(DataError, match="num_fewshot") as err:
        read_curves(
            shared_data / PYTHIA,
            metric="acc",
            run_col="model",
            skill_col="task",
            where="deduped == 0 and task == 'piqa'",
        )
    assert "--where" in str(err.value)


def test_missing_metric_lists_the_available_ones(shared_data: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"metric 'accuracy' is not in column 'metric'.*available metrics: acc, acc_norm",
    ):
        read_curves(
            shared_data / PYTHIA,
            metric="accuracy",
            run_col="model",
            skill_col="task",
            where="task == 'piqa'",
        )
    with pytest.raises(DataError, match=r"metric 'loss' is not a column .* no 'metric' column"):
        read_curves({"run": ["r"], "step": [1], "acc": [0.5]}, metric="loss")


def test_non_numeric_and_missing_values_are_errors() -> None:
    data = {
        "run": ["r"] * 3,
        "step": [0, 1, 2],
        "metric": ["acc"] * 3,
        "value": ["0.1", "high", "0.3"],
    }
    with pytest.raises(
        DataError, match=r"column 'value' has 1 non-numeric value\(s\) \(first at row 1: 'high'\)"
    ):
        read_curves(data, metric="acc")
    data = {"run": ["r"] * 3, "step": [0, 1, 2], "acc": [0.1, float("nan"), 0.3]}
    with pytest.raises(DataError, match=r"missing or NaN.*isnan"):
        read_curves(data, metric="acc")
    data = {"run": ["r"] * 3, "step": [0, "x", 2], "acc": [0.1, 0.2, 0.3]}
    with pytest.raises(DataError, match="column 'step' has 1 non-numeric"):
        read_curves(data, metric="acc")


def test_negative_steps_and_decreasing_tokens_are_errors() -> None:
    with pytest.raises(DataError, match="negative steps"):
        read_curves({"run": ["r"] * 2, "step": [-1, 2], "acc": [0.1, 0.2]}, metric="acc")
    data = {"run": ["r"] * 3, "step": [0, 1, 2], "acc": [0.1, 0.2, 0.3], "tokens": [0, 10, 5]}
    with pytest.raises(DataError, match="tokens decrease from 10 at step 1 to 5 at step 2"):
        read_curves(data, metric="acc", tokens_col="tokens")


def test_one_point_curves_are_kept_and_reported_as_insufficient() -> None:
    data = {
        "run": ["a", "b", "b", "b", "b", "b", "b"],
        "step": [5, 0, 1, 2, 3, 4, 5],
        "acc": [0.9, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9],
    }
    cs = read_curves(data, metric="acc")
    one = cs.select(run="a")[0]
    assert one.n_points == 1
    e = emergence(one, threshold=0.5)
    assert e.status == "insufficient" and e.step is None and e.level is None
    t = fit_transition(one, chance=0.0, bootstrap=0)
    assert t.status == "insufficient" and t.step is None
    assert emergence(cs.select(run="b")[0], threshold=0.5, sustain=1).status == "reached"


def test_chance_column_must_be_constant_per_curve() -> None:
    data = {"run": ["r"] * 3, "step": [0, 1, 2], "acc": [0.1, 0.2, 0.3], "chance": [0.25] * 3}
    (curve,) = read_curves(data, metric="acc", chance_col="chance")
    assert curve.chance == 0.25
    data["chance"] = [0.25, 0.25, 0.5]
    with pytest.raises(DataError, match="different chance levels"):
        read_curves(data, metric="acc", chance_col="chance")


def test_where_order_by_seeds_and_numeric_ids() -> None:
    data = {
        "run": [12, 12, 7, 7, 7, 7],
        "seed": [1, 1, 1, 1, 2, 2],
        "params": [1e9, 1e9, 1e6, 1e6, 1e6, 1e6],
        "step": [0, 1, 0, 1, 0, 1],
        "acc": [0.1, 0.2, 0.1, 0.3, 0.1, 0.4],
    }
    cs = read_curves(data, metric="acc", seed_col="seed", order_by="params")
    assert [(c.run, c.seed) for c in cs] == [("7", "1"), ("7", "2"), ("12", "1")]
    assert cs.curves[1].label == "7 [seed 2]"
    cs = read_curves(data, metric="acc", seed_col="seed", where="run == 12")
    assert [c.run for c in cs] == ["12"] and cs.where == "run == 12"
    with pytest.raises(DataError, match=r"run '3' is not in .*runs: 12"):
        cs.select(run="3")


def test_real_pythia_curves(shared_data: Path) -> None:
    cs = read_curves(
        shared_data / PYTHIA,
        metric="acc",
        run_col="model",
        skill_col="task",
        tokens_col="tokens",
        stderr_col="stderr",
        order_by="params_total",
        where="num_fewshot == 0 and deduped == 0 and task in ['piqa', 'sciq']",
    )
    assert cs.runs[0] == "pythia-70m" and cs.runs[-1] == "pythia-12b" and len(cs) == 16
    for c in cs:
        assert c.n_points == 27 and c.step[0] == 0 and c.step[-1] == 143000
        assert c.tokens is not None and np.allclose(c.tokens, c.step * 2097152)
        assert c.stderr is not None and np.all(c.stderr >= 0)
