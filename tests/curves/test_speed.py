"""Speed of learning: loss slope, tokens to a target, speedups across seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scalelab.curves import Curve, loss_slope, read_curves, speedup, tokens_to_target
from scalelab.errors import DataError

TOKENS = np.geomspace(1e6, 1e10, 17)


def loss_curve(run: str, scale: float = 1.0, seed: str = "", skill: str = "", noise=None) -> Curve:
    """L(t) = 1.5 + 40 (t / scale)^-0.2: a run that is ``scale`` times more token-efficient."""
    loss = 1.5 + 40 * (TOKENS * scale) ** -0.2
    if noise is not None:
        loss = loss * np.exp(noise)
    return Curve(
        run, skill, "loss", np.arange(TOKENS.size, dtype=float), loss, tokens=TOKENS, seed=seed
    )


def test_loss_slope_in_log_tokens() -> None:
    t = np.geomspace(1e6, 1e9, 10)
    assert np.allclose(loss_slope(t, 5 - 0.2 * np.log(t)), -0.2)
    slope = loss_slope(TOKENS, 1.5 + 40 * TOKENS**-0.2)
    exact = -0.2 * 40 * TOKENS**-0.2
    assert np.allclose(slope[1:-1], exact[1:-1], rtol=0.02)  # central differences inside
    with pytest.raises(DataError, match="positive, strictly increasing"):
        loss_slope([0, 1, 2], [3, 2, 1])
    with pytest.raises(DataError, match="at least 2 points"):
        loss_slope([1.0], [3.0])


def test_tokens_to_target_loss_is_interpolated_as_a_power_law() -> None:
    t = np.array([1e6, 1e7, 1e8, 1e9])
    c = Curve("r", "", "loss", np.arange(4.0), 10 * t**-0.1, tokens=t)
    r = tokens_to_target(c, 10 * 3e7**-0.1, sustain=1, offset=0)
    assert r.status == "reached" and r.unit == "tokens" and r.bracket == (1e7, 1e8)
    assert r.value == pytest.approx(3e7, rel=1e-9)
    never = tokens_to_target(c, 0.1)
    assert never.status == "not_reached" and never.value is None and never.last == 1e9
    with pytest.raises(DataError, match="positive number"):
        tokens_to_target(c, -1.0)
    with pytest.raises(DataError, match="kind"):
        tokens_to_target(c, 1.0, kind="speed")


def test_tokens_to_target_accuracy_and_step_fallback() -> None:
    c = Curve("r", "s", "acc", np.array([0, 10, 100, 1000.0]), [0.0, 0.2, 0.6, 0.9])
    r = tokens_to_target(c, 0.4, kind="accuracy", sustain=1)
    assert r.unit == "step" and r.bracket == (10.0, 100.0)
    assert r.value == pytest.approx(math.sqrt(11 * 101) - 1)


def test_speedup_of_a_run_that_needs_half_the_tokens() -> None:
    curves = [loss_curve("base"), loss_curve("fast", scale=2.0)]
    res = speedup(curves, baseline="base", run="fast", target=2.5, sustain=1)
    # power-law interpolation between log-spaced points of a saturating curve: close to 2
    assert res.status == "ok" and res.speedup == pytest.approx(2.0, rel=0.01)
    assert res.low is None and any("one seed per run" in n for n in res.notes)
    assert res.to_dict()["run_reach"][0]["status"] == "reached"


def test_speedup_interval_across_seeds() -> None:
    rng = np.random.default_rng(0)
    curves = [
        loss_curve("base", seed=str(s), scale=math.exp(0.1 * rng.standard_normal()))
        for s in range(3)
    ]
    curves += [
        loss_curve("fast", seed=str(s), scale=2 * math.exp(0.1 * rng.standard_normal()))
        for s in range(3)
    ]
    res = speedup(curves, baseline="base", run="fast", target=2.5, sustain=1)
    assert res.interval_method == "pooled-t-log-tokens"
    assert res.low < res.speedup < res.high and res.low < 2.0 < res.high


def test_pooled_t_interval_covers_the_true_speedup_at_the_nominal_rate() -> None:
    """Seeds scatter log-normally in tokens-to-target; 3 seeds per run; true speedup 2.6."""
    rng = np.random.default_rng(11)
    hits, reps = 0, 400
    for _ in range(reps):
        curves = [
            loss_curve("b", seed=str(s), scale=math.exp(0.15 * rng.standard_normal()))
            for s in range(3)
        ]
        curves += [
            loss_curve("r", seed=str(s), scale=2.6 * math.exp(0.15 * rng.standard_normal()))
            for s in range(3)
        ]
        res = speedup(curves, baseline="b", run="r", target=2.0, sustain=1)
        hits += res.low <= 2.6 <= res.high
    print(f"pooled-t speedup interval coverage {hits / reps:.3f} over {reps} pairs of runs")
    # a slight bias from interpolating between log-spaced points (under 1%) is allowed
    assert 0.92 <= hits / reps <= 0.98, hits / reps


def test_censored_seeds_give_a_bound_not_a_number() -> None:
    base, fast = loss_curve("base"), loss_curve("fast", scale=2.0)
    target = float(base.value[-1]) - 0.01  # the baseline never gets there, the fast run does
    res = speedup([base, fast], baseline="base", run="fast", target=target, sustain=1)
    assert res.status == "baseline_not_reached" and res.speedup is None
    assert res.bound_kind == "lower" and res.bound > 1
    res = speedup([base, fast], baseline="fast", run="base", target=target, sustain=1)
    assert res.status == "run_not_reached" and res.bound_kind == "upper" and res.speedup is None
    res = speedup([base, fast], baseline="base", run="fast", target=0.5, sustain=1)
    assert res.status == "neither_reached" and res.bound is None


def test_speedup_on_a_skill_threshold_from_a_table() -> None:
    steps = np.array([0, 100, 1000, 10000, 100000.0])
    rows = {"run": [], "task": [], "step": [], "tokens": [], "acc": []}
    for run, shift in (("base", 1.0), ("mix", 3.0)):
        for task in ("arith", "copy"):
            acc = 1 / (1 + np.exp(-(np.log(steps * shift + 1) - np.log(3000))))
            for s, a in zip(steps, acc, strict=True):
                rows["run"].append(run)
                rows["task"].append(task)
                rows["step"].append(s)
                rows["tokens"].append(s * 1000)
                rows["acc"].append(a)
    cs = read_curves(rows, metric="acc", skill_col="task", tokens_col="tokens")
    with pytest.raises(DataError, match="choose one with --skill"):
        speedup(cs, baseline="base", run="mix", target=0.5, kind="accuracy")
    res = speedup(
        cs, baseline="base", run="mix", target=0.5, kind="accuracy", skill="arith", sustain=1
    )
    assert (
        res.status == "ok" and res.skill == "arith" and res.speedup == pytest.approx(3.0, rel=0.05)
    )
    with pytest.raises(DataError, match="run 'other' has no curve"):
        speedup(cs, baseline="other", run="mix", target=0.5, kind="accuracy", skill="arith")
