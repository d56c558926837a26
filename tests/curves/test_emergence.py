"""Emergence (grokking) steps: crossing, sustain, censoring, intervals, grokking delay, Pythia."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from scalelab.curves import (
    Curve,
    CurveSet,
    analyze_curves,
    emergence,
    first_crossing,
    grokking_delay,
    read_curves,
)
from scalelab.errors import DataError
from scalelab.store import Table, read_table

STEPS = np.array([0, 10, 100, 1000, 10000.0])
PYTHIA_CHANCE = {"lambada_openai": 0.0, "piqa": 0.5, "arc_easy": 0.25, "sciq": 0.25}


def curve(values, steps=STEPS, **kw) -> Curve:
    return Curve("run", "skill", "acc", np.asarray(steps, float), np.asarray(values, float), **kw)


# ------------------------------------------------------------------ the crossing itself
def test_crossing_is_interpolated_linearly_in_log_step_plus_one() -> None:
    c = first_crossing(STEPS, [0.1, 0.2, 0.4, 0.8, 0.9], 0.6, sustain=1)
    # between step 100 (0.4) and 1000 (0.8): half way in log(step + 1)
    expected = math.exp(0.5 * (math.log(101) + math.log(1001))) - 1
    assert c.status == "reached" and c.bracket == (100.0, 1000.0) and c.index == 3
    assert c.x == pytest.approx(expected, rel=1e-12)
    pure = first_crossing(STEPS[1:], [0.2, 0.4, 0.8, 0.9], 0.6, sustain=1, offset=0.0)
    assert pure.x == pytest.approx(math.sqrt(100 * 1000), rel=1e-12)


def test_step_zero_needs_a_positive_offset() -> None:
    with pytest.raises(DataError, match="step \\+ offset > 0"):
        first_crossing(STEPS, [0.1, 0.2, 0.4, 0.8, 0.9], 0.6, offset=0.0)


def test_sustain_skips_blips_and_is_truncated_at_the_end() -> None:
    y = [0.1, 0.95, 0.3, 0.92, 0.91, 0.93]
    steps = [0, 1, 2, 3, 4, 5]
    assert first_crossing(steps, y, 0.9, sustain=1).bracket == (0.0, 1.0)
    three = first_crossing(steps, y, 0.9, sustain=3)
    assert three.bracket == (2.0, 3.0) and three.sustained_points == 3
    # a crossing at the last point is held for the one point there is
    end = first_crossing(steps, [0.1, 0.2, 0.3, 0.4, 0.5, 0.95], 0.9, sustain=3)
    assert end.status == "reached" and end.bracket == (4.0, 5.0) and end.sustained_points == 1
    with pytest.raises(DataError, match="sustain"):
        first_crossing(steps, y, 0.9, sustain=0)


def test_not_reached_at_start_and_insufficient() -> None:
    never = first_crossing(STEPS, [0.1, 0.2, 0.3, 0.4, 0.5], 0.9)
    assert never.status == "not_reached" and never.x is None and never.last_x == 10000
    start = first_crossing(STEPS, [0.95, 0.95, 0.95, 0.96, 0.97], 0.9, sustain=3)
    assert start.status == "at_start" and start.x == 0.0 and start.bracket is None
    assert first_crossing([5.0], [0.95], 0.9).status == "insufficient"


def test_falling_curves_interpolate_log_values() -> None:
    t = np.array([1e6, 1e7, 1e8])
    loss = 10 * t**-0.1
    c = first_crossing(t, loss, 10 * 3e6**-0.1, rising=False, offset=0.0, log_y=True, sustain=1)
    assert c.x == pytest.approx(3e6, rel=1e-9)


# ------------------------------------------------------------------ emergence of one curve
def test_threshold_mode_reports_step_tokens_and_flops() -> None:
    c = curve([0.1, 0.2, 0.4, 0.8, 0.95], tokens=STEPS * 2048, flops=STEPS * 6e9)
    e = emergence(c, threshold=0.6, sustain=2)
    assert e.status == "reached" and e.level == 0.6 and e.mode == "threshold"
    assert e.tokens == pytest.approx(e.step * 2048) and e.flops == pytest.approx(e.step * 6e9)
    assert e.bracket == (100.0, 1000.0) and e.interval_method == "none"
    assert emergence(c).level == 0.9  # the default threshold
    d = e.to_dict()
    assert d["bracket"] == [100.0, 1000.0] and d["status"] == "reached"


def test_fraction_mode_uses_chance_and_the_final_value() -> None:
    c = curve([0.25, 0.25, 0.4, 0.6, 0.65])
    e = emergence(c, fraction=0.5, chance=0.25, sustain=1)
    assert e.level == pytest.approx(0.25 + 0.5 * (0.65 - 0.25))
    assert e.final_value == 0.65 and e.bracket == (100.0, 1000.0)
    flat = emergence(curve([0.3, 0.3, 0.28, 0.26, 0.25]), fraction=0.5, chance=0.25)
    assert flat.status == "no_progress" and flat.step is None and flat.level is None
    with pytest.raises(DataError, match="needs the chance level"):
        emergence(c, fraction=0.5)
    with pytest.raises(DataError, match="not both"):
        emergence(c, fraction=0.5, threshold=0.5, chance=0.25)
    with pytest.raises(DataError, match=r"fraction must be in \(0, 1\]"):
        emergence(c, fraction=1.5, chance=0.25)
    assert (
        emergence(curve([0.25, 0.25, 0.4, 0.6, 0.65], chance=0.25), fraction=0.5).level == e.level
    )


def test_curves_that_never_reach_the_level_are_censored_not_given_a_step() -> None:
    c = curve([0.1, 0.3, 0.5, 0.7, 0.89], stderr=np.full(5, 0.01), tokens=STEPS * 10)
    e = emergence(c, threshold=0.9, bootstrap=200, seed=1)
    assert e.status == "not_reached" and not e.reached
    assert e.step is None and e.tokens is None and e.step_low is None and e.step_high is None
    assert e.last_step == 10000 and any("never reaches" in n for n in e.notes)
    assert 0 < e.reached_fraction < 1  # some noisy redraws touch 0.9; the estimate does not


def test_eval_noise_interval_is_seeded_and_brackets_the_estimate() -> None:
    c = curve([0.1, 0.2, 0.45, 0.8, 0.95], stderr=np.full(5, 0.03))
    a = emergence(c, threshold=0.6, bootstrap=300, seed=3)
    b = emergence(c, threshold=0.6, bootstrap=300, seed=3)
    assert a == b and a.interval_method == "eval-noise-bootstrap" and a.n_resamples == 300
    assert a.step_low < a.step < a.step_high
    no_se = emergence(curve([0.1, 0.2, 0.45, 0.8, 0.95]), threshold=0.6, bootstrap=300)
    assert no_se.interval_method == "none" and no_se.step_low is None
    assert any("no standard errors" in n for n in no_se.notes)


def test_eval_noise_interval_covers_the_noiseless_crossing_at_the_nominal_rate() -> None:
    """The target is the crossing of the noiseless curve (interpolated the same way)."""
    rng = np.random.default_rng(2024)
    steps = np.unique(np.concatenate([[0], np.geomspace(1, 1e5, 25).round()]))
    hits, reps, sd = 0, 400, 0.02
    for r in range(reps):
        lx0, width = rng.uniform(np.log(3e2), np.log(1e4)), rng.uniform(0.4, 1.0)
        true = 0.25 + 0.7 / (1 + np.exp(-(np.log(steps + 1) - lx0) / width))
        noisy = true + sd * rng.standard_normal(steps.size)
        truth = first_crossing(steps, true, 0.6, sustain=3).x
        e = emergence(
            curve(noisy, steps, stderr=np.full(steps.size, sd)),
            threshold=0.6,
            bootstrap=400,
            seed=r,
        )
        hits += (
            e.step_low is not None
            and e.step_high is not None
            and e.step_low <= truth <= e.step_high
        )
    print(f"eval-noise interval coverage {hits / reps:.3f} over {reps} curves")
    # 400 replications: binomial sd 1.1 points around 95%
    assert 0.91 <= hits / reps <= 0.985, hits / reps


# ------------------------------------------------------------------ grokking delay
def test_grokking_delay_between_train_and_heldout() -> None:
    train = curve([0.0, 0.5, 1.0, 1.0, 1.0])
    held = curve([0.0, 0.0, 0.1, 0.5, 1.0])
    d = grokking_delay(train, held, threshold=0.9, sustain=1)
    tr = math.exp(math.log(11) + 0.8 * (math.log(101) - math.log(11))) - 1
    ho = math.exp(math.log(1001) + 0.8 * (math.log(10001) - math.log(1001))) - 1
    assert d.status == "ok"
    assert d.delay == pytest.approx(ho - tr) and d.ratio == pytest.approx(ho / tr)
    late = grokking_delay(train, curve([0.0, 0.0, 0.1, 0.5, 0.6]), threshold=0.9, sustain=1)
    assert late.status == "heldout_not_reached" and late.delay is None
    assert late.delay_bound == pytest.approx(10000 - tr)
    none = grokking_delay(curve([0, 0, 0, 0, 0.1]), held, threshold=0.9)
    assert none.status == "train_not_reached" and none.delay is None


def test_grokking_delay_interval_with_standard_errors() -> None:
    se = np.full(5, 0.02)
    d = grokking_delay(
        curve([0.0, 0.5, 1.0, 1.0, 1.0], stderr=se),
        curve([0.0, 0.0, 0.1, 0.5, 1.0], stderr=se),
        threshold=0.9,
        sustain=1,
        bootstrap=300,
    )
    assert d.delay_low is not None and d.delay_high is not None
    assert d.delay_low < d.delay < d.delay_high
    assert d.to_dict()["train"]["status"] == "reached"


# ------------------------------------------------------------------ many curves
def test_analyze_curves_takes_chance_per_skill() -> None:
    cs = CurveSet(
        curves=(
            curve([0.25, 0.3, 0.5, 0.7, 0.75]),
            Curve("run", "other", "acc", STEPS, [0.5, 0.5, 0.6, 0.8, 0.9]),
        ),
        metric="acc",
        source="test",
        fingerprint="",
    )
    out = analyze_curves(
        cs, fraction=0.5, chance={"skill": 0.25, "other": 0.5}, sustain=1, fit_transitions=False
    )
    assert [r.emergence.level for r in out] == [pytest.approx(0.5), pytest.approx(0.7)]
    assert all(r.transition is None for r in out)
    with pytest.raises(DataError, match="no chance level for skill 'other'"):
        analyze_curves(cs, fraction=0.5, chance={"skill": 0.25}, fit_transitions=False)
    default = analyze_curves(cs, fraction=0.5, chance={"*": 0.25}, sustain=1, fit_transitions=False)
    assert default[1].emergence.chance == 0.25


# ------------------------------------------------------------------ the real Pythia evaluations
@lru_cache(maxsize=1)
def _pythia_table(path: str) -> Table:
    return read_table(path).where(
        "num_fewshot == 0 and deduped == 0 and task in "
        "['lambada_openai', 'piqa', 'arc_easy', 'sciq']"
    )


def pythia(shared_data: Path) -> CurveSet:
    return read_curves(
        _pythia_table(str(shared_data / "pythia_v1_evals_by_checkpoint.csv")),
        metric="acc",
        run_col="model",
        skill_col="task",
        tokens_col="tokens",
        stderr_col="stderr",
        order_by="params_total",
    )


def test_pythia_midpoint_crossings(shared_data: Path) -> None:
    """The numbers of the table in docs/curves.md (emergence columns)."""
    out = analyze_curves(
        pythia(shared_data),
        fraction=0.5,
        chance=PYTHIA_CHANCE,
        bootstrap=200,
        fit_transitions=False,
    )
    got = {(r.emergence.run, r.emergence.skill): r.emergence for r in out}
    assert len(got) == 32 and all(e.status == "reached" for e in got.values())
    # interpolated crossing steps (deterministic) as published in the docs
    assert got["pythia-70m", "lambada_openai"].step == pytest.approx(1918, abs=1)
    assert got["pythia-12b", "lambada_openai"].step == pytest.approx(3902, abs=1)
    assert got["pythia-70m", "sciq"].bracket == (512.0, 1000.0)
    assert got["pythia-12b", "arc_easy"].bracket == (3000.0, 13000.0)
    # what the data show: relative to their own final accuracy, larger models reach the
    # midpoint *later* on lambada, arc_easy and piqa (their final values are higher), with
    # non-overlapping eval-noise intervals between 70M and 12B
    for task in ("lambada_openai", "arc_easy", "piqa"):
        small, large = got["pythia-70m", task], got["pythia-12b", task]
        assert large.step_low > small.step_high, task
    # tokens are step x 2,097,152
    e = got["pythia-1b", "lambada_openai"]
    assert e.tokens == pytest.approx(e.step * 2097152)


def test_pythia_absolute_level_larger_models_get_there_sooner(shared_data: Path) -> None:
    cs = pythia(shared_data)
    lambada = [c for c in cs if c.skill == "lambada_openai"]
    steps = {c.run: emergence(c, threshold=0.2).step for c in lambada}
    assert steps["pythia-70m"] > 9000  # 70M needs past step 3000 to reach 20% accuracy
    assert all(steps[r] < 3000 for r in steps if r != "pythia-70m")
    assert steps["pythia-12b"] < steps["pythia-160m"]
